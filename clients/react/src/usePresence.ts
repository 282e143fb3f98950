// usePresence and useMyPresence: this client's own presence in a room.
import { useCallback, useEffect, useState, useSyncExternalStore } from 'react'
import { useRollcall } from './provider.js'
import type { Meta } from './room.js'

/** What a user tracked by {@link usePresence} looks like to others (the presence meta). */
export interface PresenceMeta {
  user_id: string
  user_type?: string
  name?: string
  /** `idle` while the page is hidden, else `online`. */
  status: 'online' | 'idle'
  /** When this hook started tracking (ISO 8601). */
  online_at: string
  /** Fields set with {@link useMyPresence}. */
  [field: string]: unknown
}

/** Options of {@link usePresence}. */
export interface UsePresenceOptions {
  userId: string | null | undefined
  userType?: string
  name?: string
  /** The room (default: the provider's). */
  room?: string
  /** False (or no userId): not present. Default true. */
  enabled?: boolean
}

/** This user's own state: `connecting` until the channel is joined and tracked. */
export type OwnStatus = 'connecting' | 'online' | 'idle' | 'offline'

function pageHidden(): boolean {
  return typeof document !== 'undefined' && document.visibilityState === 'hidden'
}

/**
 * Tracks `userId` while mounted and enabled: online once joined (re-tracked after every
 * reconnect), `idle` while the page is hidden. A new `name` or `userType` updates the meta in
 * place (watchers see no leave); a new `userId` rejoins as that user. On `pagehide`
 * realtime-js closes the socket (the presence leaves at once) and reopens it on `pageshow`.
 */
export function usePresence({ userId, userType, name, room, enabled = true }: UsePresenceOptions): {
  status: OwnStatus
} {
  const r = useRollcall().room(room)
  const active = enabled && !!userId
  const [visibility, setVisibility] = useState<'online' | 'idle'>(() => (pageHidden() ? 'idle' : 'online'))
  const [hidden, setHidden] = useState(false)
  const [onlineAt] = useState(() => new Date().toISOString())
  const state = useSyncExternalStore(r.changed.subscribe, r.getState, r.getState)

  useEffect(() => {
    if (!active) return
    r.setKey(userId!)
    const release = r.acquire()
    const onVisibility = () => setVisibility(pageHidden() ? 'idle' : 'online')
    const onPageHide = () => setHidden(true)
    const onPageShow = () => setHidden(false)
    document.addEventListener('visibilitychange', onVisibility)
    window.addEventListener('pagehide', onPageHide)
    window.addEventListener('pageshow', onPageShow)
    return () => {
      document.removeEventListener('visibilitychange', onVisibility)
      window.removeEventListener('pagehide', onPageHide)
      window.removeEventListener('pageshow', onPageShow)
      r.setBase(null)
      release()
    }
  }, [r, userId, active])

  useEffect(() => {
    if (!active) return
    const meta: Meta = { user_id: userId!, status: visibility, online_at: onlineAt }
    if (userType !== undefined) meta.user_type = userType
    if (name !== undefined) meta.name = name
    r.setBase(meta)
  }, [r, active, userId, userType, name, visibility, onlineAt])

  let status: OwnStatus
  if (!active || hidden) status = 'offline'
  else if (state !== 'joined') status = 'connecting'
  else status = visibility
  return { status }
}

/**
 * Custom fields of this client's own presence meta in a room, like Liveblocks'
 * `useMyPresence`: `[fields, update]`; `update({cursor: {x, y}})` merges and re-tracks (an
 * in-place update). Tracks under {@link usePresence}'s user when it is mounted for the room,
 * else under a key the server picks.
 */
export function useMyPresence<M extends Meta = Meta>(room?: string): [Partial<M>, (patch: Partial<M>) => void] {
  const r = useRollcall().room(room)
  useEffect(() => r.acquire(), [r])
  const fields = useSyncExternalStore(r.changed.subscribe, r.getCustom, r.getCustom) as Partial<M>
  const update = useCallback((patch: Partial<M>) => r.updateCustom(patch as Meta), [r])
  return [fields, update]
}
