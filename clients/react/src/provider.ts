// RollcallProvider: one RealtimeClient (one socket) for every hook below it.
import { createContext, createElement, useContext, useEffect, useMemo, type ReactNode } from 'react'
import type { RealtimeClient } from '@supabase/realtime-js'
import { createRealtimeClient, DEFAULT_ROOM, realtimeOf, type RollcallConfig, type SupabaseLike } from './client.js'
import { Room } from './room.js'
import { StatusWatch } from './status.js'

/** What the hooks share: the client, its rooms and its status watch. */
export class RollcallStore {
  private rooms = new Map<string, Room>()
  private watcher: StatusWatch | null = null
  private users = 0
  private teardown: ReturnType<typeof setTimeout> | null = null

  constructor(
    /** The RealtimeClient every hook uses. */
    readonly client: RealtimeClient,
    /** The room hooks use when they name none. */
    readonly defaultRoom: string,
    private readonly owned: boolean,
  ) {}

  /** The shared room `name` (the default room when absent). */
  room(name?: string): Room {
    const n = name ?? this.defaultRoom
    let r = this.rooms.get(n)
    if (!r) {
      r = new Room(this.client, n)
      this.rooms.set(n, r)
    }
    return r
  }

  /** The shared status watch. */
  statuses(): StatusWatch {
    this.watcher ??= new StatusWatch(this.client)
    return this.watcher
  }

  /** Marks the store used by a mounted provider. */
  retain(): void {
    this.users++
    if (this.teardown) clearTimeout(this.teardown)
    this.teardown = null
  }

  /**
   * Releases it; an owned client disconnects once no provider uses it (deferred a tick so
   * StrictMode's unmount and remount keep the socket).
   */
  release(): void {
    this.users--
    if (this.users > 0 || !this.owned) return
    this.teardown = setTimeout(() => {
      if (this.users === 0) void this.client.removeAllChannels().finally(() => this.client.disconnect())
    }, 0)
  }
}

const Ctx = createContext<RollcallStore | null>(null)

/** Props of {@link RollcallProvider}: a `config` to connect with, or an existing `client`. */
export interface RollcallProviderProps {
  /** Where to connect; the provider opens one socket for all its hooks. */
  config?: RollcallConfig
  /**
   * An existing RealtimeClient, or a supabase-js client (its `realtime` is used), pointed at
   * Rollcall. The provider then never disconnects it.
   */
  client?: RealtimeClient | SupabaseLike
  /**
   * A user JWT. A new value is sent with `setAuth` on the open socket (every joined channel
   * gets `access_token`): no reconnect, no presence blip.
   */
  accessToken?: string | null
  /** The room hooks use when they name none. Default `presence`. */
  room?: string
  children?: ReactNode
}

/** Makes one shared connection available to the hooks below it. */
export function RollcallProvider(props: RollcallProviderProps) {
  const { config, client, room } = props
  const url = config?.url
  const apikey = config?.apikey
  const heartbeat = config?.heartbeatIntervalMs
  const store = useMemo(() => {
    if (client) return new RollcallStore(realtimeOf(client), room ?? DEFAULT_ROOM, false)
    if (!config) throw new Error('RollcallProvider needs a config or a client')
    const rt = createRealtimeClient(config)
    if (props.accessToken) void rt.setAuth(props.accessToken)
    return new RollcallStore(rt, room ?? DEFAULT_ROOM, true)
    // A new socket only when where or how to connect changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, url, apikey, heartbeat, room])
  useEffect(() => {
    store.retain()
    return () => store.release()
  }, [store])
  const token = props.accessToken
  useEffect(() => {
    if (token !== undefined) void store.client.setAuth(token)
  }, [store, token])
  return createElement(Ctx.Provider, { value: store }, props.children)
}

/** The provider's store; throws outside a {@link RollcallProvider}. */
export function useRollcall(): RollcallStore {
  const store = useContext(Ctx)
  if (!store) throw new Error('wrap the tree in <RollcallProvider config={...}> (or client={...})')
  return store
}
