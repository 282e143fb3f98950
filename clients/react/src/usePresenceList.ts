// usePresenceList: everyone in a room.
import { useEffect, useMemo, useSyncExternalStore } from 'react'
import { useRollcall } from './provider.js'
import type { Member, Meta } from './room.js'

/** Options of {@link usePresenceList}. */
export interface UsePresenceListOptions {
  /** The room (default: the provider's). */
  room?: string
  /** Include this client's own key. Default false (like Liveblocks' `useOthers`). */
  includeSelf?: boolean
}

/**
 * The room's members, sorted by key: one entry per key with one meta per device or tab. Joins
 * the room's shared channel while mounted; re-renders only when the presence state changes.
 */
export function usePresenceList<M extends Meta = Meta>(options: UsePresenceListOptions = {}): Member<M>[] {
  const r = useRollcall().room(options.room)
  useEffect(() => r.acquire(), [r])
  const members = useSyncExternalStore(r.changed.subscribe, r.getMembers, r.getMembers)
  const self = useSyncExternalStore(r.changed.subscribe, r.getKey, r.getKey)
  const includeSelf = options.includeSelf ?? false
  return useMemo(
    () => (includeSelf || self === undefined ? members : members.filter((m) => m.key !== self)) as Member<M>[],
    [members, self, includeSelf],
  )
}
