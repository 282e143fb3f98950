// useChildrenPresence: some users' statuses from the server's status watch.
import { useEffect, useMemo, useRef, useState } from 'react'
import { useRollcall } from './provider.js'
import type { ChildStatus, KeyStatus } from './status.js'

/** Options of {@link useChildrenPresence}. */
export interface UseChildrenPresenceOptions {
  childIds: readonly string[]
  /** False: watch nothing. Default true. */
  enabled?: boolean
  /**
   * Called once per real change of a child's status after its first known status (the
   * baseline, read with `statusOf`/`statuses`). Offline comes only after the server's
   * `offline_grace`, so a child reloading a page does not flap.
   */
  onStatusChange?: (childId: string, status: ChildStatus, previous: ChildStatus) => void
}

/** What {@link useChildrenPresence} returns; a new object only when something changed. */
export interface ChildrenPresence {
  /** True while the child is online or idle. */
  isChildOnline: (childId: string) => boolean
  /** The child's status; `offline` until known and for ids not watched. */
  statusOf: (childId: string) => ChildStatus
  /** When the child was last seen (ms since the epoch), `null` if never or unknown. */
  lastSeen: (childId: string) => number | null
  /** Status and last seen of every watched child with a known status. */
  statuses: Readonly<Record<string, KeyStatus>>
  /** True while the status watch is joined. */
  connected: boolean
}

function sameStatuses(a: Record<string, KeyStatus>, b: Record<string, KeyStatus>): boolean {
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => b[k] && a[k].status === b[k].status && a[k].lastSeen === b[k].lastSeen)
}

/**
 * Watches `childIds` through the server's status watch (`rollcall:status`): the provider's one
 * socket, one watch for all hooks. Statuses survive a reconnect of this client; after it, only
 * what changed meanwhile is reported.
 */
export function useChildrenPresence({
  childIds,
  enabled = true,
  onStatusChange,
}: UseChildrenPresenceOptions): ChildrenPresence {
  const watch = useRollcall().statuses()
  const idsKey = [...new Set(childIds)].sort().join('\u0000')
  const [statuses, setStatuses] = useState<Record<string, KeyStatus>>({})
  const [connected, setConnected] = useState(false)
  const callback = useRef(onStatusChange)
  callback.current = onStatusChange

  useEffect(() => {
    if (!enabled) {
      setStatuses({})
      setConnected(false)
      return
    }
    const ids = idsKey === '' ? [] : idsKey.split('\u0000')
    const mine = new Set(ids)
    const read = () => {
      const next: Record<string, KeyStatus> = {}
      for (const id of ids) {
        const s = watch.get(id)
        if (s) next[id] = s
      }
      setStatuses((prev) => (sameStatuses(prev, next) ? prev : next))
      setConnected(watch.isJoined())
    }
    const offChanged = watch.changed.subscribe(read)
    const offChange = watch.onChange((key, now, before) => {
      if (mine.has(key)) callback.current?.(key, now.status, before.status)
    })
    const release = watch.watch(ids)
    read()
    return () => {
      release()
      offChange()
      offChanged()
    }
  }, [watch, idsKey, enabled])

  return useMemo(
    () => ({
      isChildOnline: (id: string) => (statuses[id]?.status ?? 'offline') !== 'offline',
      statusOf: (id: string) => statuses[id]?.status ?? 'offline',
      lastSeen: (id: string) => statuses[id]?.lastSeen ?? null,
      statuses,
      connected,
    }),
    [statuses, connected],
  )
}
