// useChildrenPresence: watch some users' presence; report only real status changes.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import type { RealtimeChannel } from '@supabase/realtime-js'
import { createRealtimeClient, configKey, DEFAULT_ROOM, useRollcallConfig, type RollcallConfig } from './client'

/** A watched user's status: online (a visible page), idle (only hidden pages), offline. */
export type ChildStatus = 'online' | 'idle' | 'offline'

/** Options of {@link useChildrenPresence}. */
export interface UseChildrenPresenceOptions {
  childIds: readonly string[]
  /** False: do not connect. Default true. */
  enabled?: boolean
  /**
   * Called once per real change of a child's status, after the first known status (the
   * baseline, read with `isChildOnline`/`statuses`). Never called twice with the same status.
   */
  onStatusChange?: (childId: string, status: ChildStatus, previous: ChildStatus) => void
  /** Overrides the provider's config. */
  config?: RollcallConfig
}

/** What {@link useChildrenPresence} returns; a new object only when a status changed. */
export interface ChildrenPresence {
  /** True while the child has a presence (online or idle). */
  isChildOnline: (childId: string) => boolean
  /** The child's status; `offline` for ids not watched. */
  statusOf: (childId: string) => ChildStatus
  /** Status of every watched child. */
  statuses: Readonly<Record<string, ChildStatus>>
  /** True while the watching channel is joined. */
  connected: boolean
}

type Metas = Array<{ status?: string }>

function statusFrom(metas: Metas | undefined): ChildStatus {
  if (!metas || metas.length === 0) return 'offline'
  return metas.some((m) => m.status !== 'idle') ? 'online' : 'idle'
}

/** Watches `childIds` in the presence channel (one socket per mounted hook). */
export function useChildrenPresence({
  childIds,
  enabled = true,
  onStatusChange,
  config,
}: UseChildrenPresenceOptions): ChildrenPresence {
  const cfg = useRollcallConfig(config)
  const [statuses, setStatuses] = useState<Record<string, ChildStatus>>({})
  const [connected, setConnected] = useState(false)
  const cfgRef = useRef(cfg)
  cfgRef.current = cfg
  const callback = useRef(onStatusChange)
  callback.current = onStatusChange
  const ids = useRef(childIds)
  ids.current = childIds
  const channelRef = useRef<RealtimeChannel | null>(null)
  const known = useRef<Record<string, ChildStatus>>({})
  const key = configKey(cfg)
  const idsKey = [...childIds].sort().join('\u0000')

  const recompute = useCallback(() => {
    const channel = channelRef.current
    const state = (channel?.presenceState() ?? {}) as Record<string, Metas>
    const synced = channel !== null
    const next: Record<string, ChildStatus> = {}
    let changed = Object.keys(known.current).length !== ids.current.length
    for (const id of ids.current) {
      const now = synced ? statusFrom(state[id]) : 'offline'
      const before = known.current[id]
      next[id] = now
      if (before === undefined) {
        changed = true // baseline: no callback
      } else if (before !== now) {
        changed = true
        callback.current?.(id, now, before)
      }
    }
    if (changed) {
      known.current = next
      setStatuses(next)
    }
  }, [])

  useEffect(() => {
    if (!enabled) {
      setConnected(false)
      return
    }
    const c = cfgRef.current
    const client = createRealtimeClient(c)
    const channel = client.channel(c.room ?? DEFAULT_ROOM, { config: { presence: { enabled: true } } })
    let synced = false
    channel.on('presence', { event: 'sync' }, () => {
      if (!synced) {
        synced = true
        channelRef.current = channel
        known.current = {} // the first sync sets the baseline
      }
      recompute()
    })
    channel.subscribe((s) => setConnected(s === 'SUBSCRIBED'))
    return () => {
      channelRef.current = null
      known.current = {}
      setConnected(false)
      void client.removeChannel(channel).finally(() => client.disconnect())
    }
  }, [enabled, key, recompute])

  // New or removed ids: new ones get a baseline, no callback.
  useEffect(() => {
    if (channelRef.current) recompute()
  }, [idsKey, recompute])

  return useMemo(
    () => ({
      isChildOnline: (id: string) => (statuses[id] ?? 'offline') !== 'offline',
      statusOf: (id: string) => statuses[id] ?? 'offline',
      statuses,
      connected,
    }),
    [statuses, connected],
  )
}
