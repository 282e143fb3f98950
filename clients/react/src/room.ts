// One presence channel per room and provider, shared by every hook that uses the room.
import type { RealtimeChannel, RealtimeClient } from '@supabase/realtime-js'
import { Emitter } from './emitter.js'

/** A JSON object tracked as a presence's meta. */
export type Meta = Record<string, unknown>

/** One key of a room with its presences (one per device or tab). */
export interface Member<M extends Meta = Meta> {
  /** The presence key (the user id when tracked by {@link usePresence}). */
  key: string
  /** One meta per presence of the key, oldest first. */
  metas: M[]
}

/** The room's channel state. */
export type RoomState = 'closed' | 'joining' | 'joined'

/**
 * A room: a ref-counted realtime-js channel. Changes to who uses it are applied in a microtask,
 * so hooks mounting together (or React StrictMode's mount, unmount, mount) cause one join.
 * The own meta is re-tracked on every join (realtime-js does not re-track after a rejoin) and
 * changed with `track()` on the joined channel: an update, not a leave and a join.
 */
export class Room {
  readonly changed = new Emitter()
  private refs = 0
  private key: string | undefined
  private base: Meta | null = null
  private custom: Meta = {}
  private channel: RealtimeChannel | null = null
  private channelKey: string | undefined
  private scheduled = false
  private busy: Promise<void> = Promise.resolve()
  private members: Member[] = []
  private status: RoomState = 'closed'

  constructor(
    private readonly client: RealtimeClient,
    readonly name: string,
  ) {}

  /** Uses the room until the returned function is called. */
  acquire(): () => void {
    this.refs++
    this.schedule()
    let released = false
    return () => {
      if (released) return
      released = true
      this.refs--
      this.schedule()
    }
  }

  /** The presence key of this client in the room (a new key rejoins the channel). */
  setKey(key: string | undefined): void {
    if (key === this.key) return
    this.key = key
    this.schedule()
  }

  /** The meta {@link usePresence} tracks; `null` untracks. */
  setBase(meta: Meta | null): void {
    this.base = meta
    this.retrack()
  }

  /** Merges `patch` into the custom part of the own meta ({@link useMyPresence}). */
  updateCustom(patch: Meta): void {
    this.custom = { ...this.custom, ...patch }
    this.retrack()
    this.changed.emit()
  }

  /** The custom part of the own meta. */
  getCustom = (): Meta => this.custom
  /** Everyone in the room, sorted by key (a new array only after a change). */
  getMembers = (): Member[] => this.members
  /** Whether the channel is joined. */
  getState = (): RoomState => this.status
  /** The own presence key, if any. */
  getKey = (): string | undefined => this.key

  private ownMeta(): Meta | null {
    if (!this.base && Object.keys(this.custom).length === 0) return null
    return { ...(this.base ?? {}), ...this.custom }
  }

  private retrack(): void {
    if (!this.channel || this.status !== 'joined') return
    const meta = this.ownMeta()
    if (meta) void this.channel.track(meta)
    else void this.channel.untrack()
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.busy = this.busy.then(() => this.sync())
    })
  }

  private async sync(): Promise<void> {
    const want = this.refs > 0
    if (this.channel && (!want || this.channelKey !== this.key)) {
      const old = this.channel
      this.channel = null
      this.setStatus('closed')
      await this.client.removeChannel(old)
    }
    if (want && !this.channel) this.open()
  }

  private open(): void {
    const key = this.key
    const channel = this.client.channel(this.name, { config: { presence: { key: key ?? '' } } })
    this.channel = channel
    this.channelKey = key
    this.setStatus('joining')
    channel.on('presence', { event: 'sync' }, () => {
      if (this.channel !== channel) return
      const state = channel.presenceState() as Record<string, Meta[]>
      this.members = Object.keys(state)
        .sort()
        .map((k) => ({ key: k, metas: state[k].map(stripRef) }))
      this.changed.emit()
    })
    channel.subscribe((s) => {
      if (this.channel !== channel) return
      if (s === 'SUBSCRIBED') {
        this.setStatus('joined')
        this.retrack()
      } else {
        this.setStatus(s === 'CLOSED' ? 'closed' : 'joining')
      }
    })
  }

  private setStatus(s: RoomState): void {
    if (s === this.status) return
    this.status = s
    this.changed.emit()
  }
}

function stripRef(meta: Meta): Meta {
  const { presence_ref: _ref, ...rest } = meta
  return rest
}
