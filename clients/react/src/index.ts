// @rollcall/react: presence hooks for Rollcall (and Supabase Realtime), on @supabase/realtime-js.
export {
  RollcallProvider,
  createRealtimeClient,
  endpointOf,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_ROOM,
  type RollcallConfig,
} from './client'
export { usePresence, type UsePresenceOptions, type PresenceMeta, type OwnStatus } from './usePresence'
export {
  useChildrenPresence,
  type UseChildrenPresenceOptions,
  type ChildrenPresence,
  type ChildStatus,
} from './useChildrenPresence'
