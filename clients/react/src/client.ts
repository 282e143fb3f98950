// Configuration and the RealtimeClient the provider opens.
import { RealtimeClient, type WebSocketLikeConstructor } from '@supabase/realtime-js'

/** Where and how the provider connects (ignored when an existing client is passed in). */
export interface RollcallConfig {
  /** Server base URL (`http://host:4000`), or a Realtime endpoint (`wss://x.supabase.co/realtime/v1`). */
  url: string
  /** The `apikey` query parameter (Supabase anon key; any value for an open Rollcall). */
  apikey: string
  /**
   * Heartbeat period. Default 60 000 ms, within Rollcall's default idle timeout (3 × 60 s).
   * Against hosted Supabase use 25 000 (realtime-js's default): Phoenix closes sockets idle 60 s.
   */
  heartbeatIntervalMs?: number
  /** A WebSocket implementation where there is no global one (Node 20: `ws`). */
  transport?: WebSocketLikeConstructor
}

/** The default heartbeat: once a minute. */
export const DEFAULT_HEARTBEAT_MS = 60_000
/** The default presence channel. */
export const DEFAULT_ROOM = 'presence'

/** The Realtime endpoint realtime-js expects (it appends `/websocket`). */
export function endpointOf(url: string): string {
  const trimmed = url.replace(/\/+$/, '')
  const ws = trimmed.replace(/^http(s?):\/\//, 'ws$1://')
  return ws.endsWith('/realtime/v1') ? ws : `${ws}/realtime/v1`
}

/** A new RealtimeClient for `config` with the 60 s heartbeat default. */
export function createRealtimeClient(config: RollcallConfig): RealtimeClient {
  return new RealtimeClient(endpointOf(config.url), {
    params: { apikey: config.apikey },
    heartbeatIntervalMs: config.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS,
    ...(config.transport ? { transport: config.transport } : {}),
  })
}

/** A supabase-js client: only its `realtime` member is used. */
export interface SupabaseLike {
  realtime: RealtimeClient
}

/** The RealtimeClient inside `client` (a RealtimeClient or a supabase-js client). */
export function realtimeOf(client: RealtimeClient | SupabaseLike): RealtimeClient {
  return 'realtime' in client && client.realtime ? client.realtime : (client as RealtimeClient)
}
