// Shared setup: the provider's configuration and the RealtimeClient each hook opens.
import { createContext, createElement, useContext, type ReactNode } from 'react'
import { RealtimeClient, type WebSocketLikeConstructor } from '@supabase/realtime-js'

/** Where and how the hooks connect. */
export interface RollcallConfig {
  /** Server base URL (`http://host:4000`), or a Realtime endpoint (`wss://x.supabase.co/realtime/v1`). */
  url: string
  /** The `apikey` query parameter (Supabase anon key; any value for an open Rollcall). */
  apikey: string
  /** Presence channel everyone tracks in and parents watch. Default `presence`. */
  room?: string
  /**
   * Heartbeat period. Default 60 000 ms, within Rollcall's default idle timeout (3 × 60 s).
   * Against hosted Supabase use 25 000 (realtime-js's default): Phoenix closes sockets idle 60 s.
   */
  heartbeatIntervalMs?: number
  /** A WebSocket implementation where there is no global one (Node 20: `ws`). */
  transport?: WebSocketLikeConstructor
  /** A user JWT for channel authorisation; the apikey is used when absent. */
  accessToken?: string
}

/** The default heartbeat: once a minute. */
export const DEFAULT_HEARTBEAT_MS = 60_000
/** The default presence channel. */
export const DEFAULT_ROOM = 'presence'

const Ctx = createContext<RollcallConfig | null>(null)

/** Makes `config` available to the hooks below it. */
export function RollcallProvider(props: { config: RollcallConfig; children?: ReactNode }) {
  return createElement(Ctx.Provider, { value: props.config }, props.children)
}

/** The config passed to a hook, else the provider's; throws when there is neither. */
export function useRollcallConfig(explicit?: RollcallConfig): RollcallConfig {
  const fromContext = useContext(Ctx)
  const config = explicit ?? fromContext
  if (!config) throw new Error('wrap the tree in <RollcallProvider config={...}> or pass config')
  return config
}

/** The Realtime endpoint realtime-js expects (it appends `/websocket`). */
export function endpointOf(url: string): string {
  const trimmed = url.replace(/\/+$/, '')
  const ws = trimmed.replace(/^http(s?):\/\//, 'ws$1://')
  return ws.endsWith('/realtime/v1') ? ws : `${ws}/realtime/v1`
}

/** A new RealtimeClient for `config` with the 60 s heartbeat default. */
export function createRealtimeClient(config: RollcallConfig): RealtimeClient {
  const client = new RealtimeClient(endpointOf(config.url), {
    params: { apikey: config.apikey },
    heartbeatIntervalMs: config.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS,
    ...(config.transport ? { transport: config.transport } : {}),
  })
  if (config.accessToken) void client.setAuth(config.accessToken)
  return client
}

/** A stable key for a config, so an equal config object does not reconnect. */
export function configKey(c: RollcallConfig): string {
  return JSON.stringify([c.url, c.apikey, c.room, c.heartbeatIntervalMs, c.accessToken])
}
