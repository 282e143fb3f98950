// The server's status watch: one `rollcall:status` channel per provider, ref-counted keys.
import type { RealtimeChannel, RealtimeClient } from '@supabase/realtime-js'
import { Emitter } from './emitter.js'

/** A watched user's status as the server reports it (offline only after `offline_grace`). */
export type ChildStatus = 'online' | 'idle' | 'offline'

/** A key's status and when it was last seen (ms since the epoch; `null`: never). */
export interface KeyStatus {
  status: ChildStatus
  lastSeen: number | null
}

interface WireStatus {
  key: string
  status: ChildStatus
  last_seen: number | null
}

/** The topic of the server's status watch (`realtime:rollcall:status` on the wire). */
export const STATUS_TOPIC = 'rollcall:status'

type Push = { receive(status: string, cb: (response: unknown) => void): Push }
type PushingChannel = { channelAdapter: { push(event: string, payload: object, timeout?: number): Push } }

/**
 * Watches keys through the server: `watch` on join (and again after every rejoin, so a
 * reconnect reports only what really changed meanwhile), `status` pushes for real changes,
 * `unwatch` when no hook watches a key any more.
 */
export class StatusWatch {
  readonly changed = new Emitter()
  private counts = new Map<string, number>()
  private statuses = new Map<string, KeyStatus>()
  private listeners = new Set<(key: string, now: KeyStatus, before: KeyStatus) => void>()
  private channel: RealtimeChannel | null = null
  private joined = false
  private scheduled = false
  private pending = new Set<string>()

  constructor(private readonly client: RealtimeClient) {}

  /** Watches `keys` until the returned function is called. */
  watch(keys: readonly string[]): () => void {
    for (const k of keys) {
      const n = this.counts.get(k) ?? 0
      this.counts.set(k, n + 1)
      if (n === 0) this.pending.add(k)
    }
    this.schedule()
    let released = false
    return () => {
      if (released) return
      released = true
      for (const k of keys) {
        const n = (this.counts.get(k) ?? 1) - 1
        if (n > 0) this.counts.set(k, n)
        else {
          this.counts.delete(k)
          this.pending.delete(k)
        }
      }
      this.schedule()
    }
  }

  /** A key's last known status (`undefined` until the server answered). */
  get(key: string): KeyStatus | undefined {
    return this.statuses.get(key)
  }

  /** Whether the status channel is joined. */
  isJoined = (): boolean => this.joined

  /** Calls `fn` on every real change of a key that already had a status. */
  onChange(fn: (key: string, now: KeyStatus, before: KeyStatus) => void): () => void {
    this.listeners.add(fn)
    return () => {
      this.listeners.delete(fn)
    }
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.sync()
    })
  }

  private sync(): void {
    // Keys nobody watches any more.
    const dropped = [...this.statuses.keys()].filter((k) => !this.counts.has(k))
    for (const k of dropped) this.statuses.delete(k)
    if (this.counts.size === 0) {
      if (this.channel) {
        const old = this.channel
        this.channel = null
        this.joined = false
        void this.client.removeChannel(old)
        this.changed.emit()
      }
      return
    }
    if (!this.channel) return this.open()
    if (!this.joined) return // the join's handler watches everything
    if (dropped.length > 0) this.push('unwatch', dropped)
    if (this.pending.size > 0) {
      const keys = [...this.pending]
      this.pending.clear()
      this.push('watch', keys)
    }
  }

  private open(): void {
    const channel = this.client.channel(STATUS_TOPIC)
    this.channel = channel
    // realtime-js routes pushes of any event name to `on(event)` bindings.
    ;(channel as unknown as { on(e: string, f: object, cb: (p: WireStatus) => void): void }).on(
      'status',
      {},
      (p) => {
        if (this.channel === channel && this.counts.has(p.key)) this.apply(p)
      },
    )
    channel.subscribe((s) => {
      if (this.channel !== channel) return
      const joined = s === 'SUBSCRIBED'
      if (joined === this.joined) return
      this.joined = joined
      if (joined) {
        this.pending.clear()
        this.push('watch', [...this.counts.keys()])
      }
      this.changed.emit()
    })
  }

  private push(event: 'watch' | 'unwatch', keys: string[]): void {
    if (!this.channel || keys.length === 0) return
    const push = (this.channel as unknown as PushingChannel).channelAdapter.push(event, { keys })
    if (event === 'watch') {
      push.receive('ok', (response) => {
        const statuses = (response as { statuses?: WireStatus[] }).statuses ?? []
        for (const s of statuses) if (this.counts.has(s.key)) this.apply(s)
      })
    }
  }

  private apply(s: WireStatus): void {
    const now: KeyStatus = { status: s.status, lastSeen: s.last_seen ?? null }
    const before = this.statuses.get(s.key)
    if (before && before.status === now.status && before.lastSeen === now.lastSeen) return
    this.statuses.set(s.key, now)
    if (before && before.status !== now.status) {
      for (const fn of [...this.listeners]) fn(s.key, now, before)
    }
    this.changed.emit()
  }
}
