// @rollcall/react: presence hooks for Rollcall (and Supabase Realtime), on @supabase/realtime-js.
export {
  createRealtimeClient,
  endpointOf,
  realtimeOf,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_ROOM,
  type RollcallConfig,
  type SupabaseLike,
} from './client.js'
export { RollcallProvider, RollcallStore, useRollcall, type RollcallProviderProps } from './provider.js'
export { Room, type Member, type Meta, type RoomState } from './room.js'
export { StatusWatch, STATUS_TOPIC, type ChildStatus, type KeyStatus } from './status.js'
export { usePresence, useMyPresence, type UsePresenceOptions, type PresenceMeta, type OwnStatus } from './usePresence.js'
export { usePresenceList, type UsePresenceListOptions } from './usePresenceList.js'
export {
  useChildrenPresence,
  type UseChildrenPresenceOptions,
  type ChildrenPresence,
} from './useChildrenPresence.js'
