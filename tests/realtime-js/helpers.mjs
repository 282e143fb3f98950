// Shared helpers for the Rollcall realtime-js conformance suite.
//
// Server under test (set by the Rust harness that starts it):
//   ROLLCALL_URL                e.g. http://127.0.0.1:41234   (required)
//   ROLLCALL_HEARTBEAT_MS       server heartbeat interval     (default 1000)
//   ROLLCALL_MISSED_HEARTBEATS  missed intervals before drop  (default 3)
//   ROLLCALL_JWT_SECRET         HS256 secret for test JWTs    (default rollcall-test-secret)
//   ROLLCALL_JOIN_ERROR_DELAY_MS  extra wait for join error replies if the server
//                               delays them like RT's CHANNEL_ERROR_BACKOFF_MS (default 0)
//
// Facts about @supabase/realtime-js 2.119.1 / @supabase/phoenix 0.4.5 this file relies on
// (read from node_modules):
// * RealtimeClient has no `conn`; the Phoenix Socket is `client.socketAdapter.getSocket()`,
//   its transport instance (a `ws` WebSocket here) is `socket.conn`, and the TCP socket is
//   `socket.conn._socket` (ws sets `_socket` in setSocket()).
// * Socket.push() calls `this.encode(msg, cb)` and onConnMessage() calls
//   `this.decode(raw, cb)` through the instance properties, so wrapping them records every
//   frame the library sends and receives.
// * RealtimeClient.disconnect() arms a 10 s setTimeout that is never cleared, and every
//   Push (including ack-less broadcasts) arms a `timeout`-long reply timer. Both would keep
//   the test process alive, so cleanup disconnects through the Phoenix socket directly and
//   destroys every recorded Push.
// * Presence callbacks: sync gets no argument; join gets {event,key,currentPresences,newPresences};
//   leave gets {event,key,currentPresences,leftPresences}; lists are transformed metas
//   ({...meta, presence_ref}).
// * channel.send() resolves 'ok' | 'error' | 'timed out'; with broadcast.ack false it resolves
//   'ok' without waiting for any reply.

import crypto from 'node:crypto'
import WebSocket from 'ws'
import { RealtimeClient } from '@supabase/realtime-js'

export { WebSocket, RealtimeClient }

function envNumber(name, dflt) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return dflt
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw} is not a positive number`)
  return n
}

/** Server heartbeat interval (ms). */
export const HB_MS = envNumber('ROLLCALL_HEARTBEAT_MS', 1000)
/** Missed heartbeats before the server drops a silent connection. */
export const MISSED = envNumber('ROLLCALL_MISSED_HEARTBEATS', 3)
/** No inbound message for this long => connection dropped, presences leave. */
export const IDLE_MS = HB_MS * MISSED
/** Default wait for "local" events (docs/realtime-spec.md §9: 2 s). */
export const LOCAL_MS = 2000
/** Extra allowance for join error replies. */
export const JOIN_ERROR_DELAY_MS = Number(process.env.ROLLCALL_JOIN_ERROR_DELAY_MS || 0)
/** Default per-test timeout. */
export const TEST_TIMEOUT = 10_000
export const JWT_SECRET = process.env.ROLLCALL_JWT_SECRET || 'rollcall-test-secret'

/**
 * Resolved server endpoints. Throws (so the calling test FAILS, it is not skipped) when
 * ROLLCALL_URL is missing.
 */
export function serverConfig() {
  const url = process.env.ROLLCALL_URL
  if (!url) {
    throw new Error(
      'ROLLCALL_URL is not set: this suite needs a running Rollcall server. ' +
        'Start one and run e.g. `ROLLCALL_URL=http://127.0.0.1:41234 ROLLCALL_HEARTBEAT_MS=1000 ' +
        'ROLLCALL_MISSED_HEARTBEATS=3 node --test` in tests/realtime-js/ ' +
        '(normally the Rust harness sets these variables).'
    )
  }
  if (!/^https?:\/\//.test(url)) throw new Error(`ROLLCALL_URL must start with http:// or https:// (got ${url})`)
  const httpUrl = url.replace(/\/+$/, '')
  const wsEndpoint = `${httpUrl.replace(/^http/, 'ws')}/realtime/v1`
  return { httpUrl, wsEndpoint, wsUrl: `${wsEndpoint}/websocket`, broadcastUrl: `${httpUrl}/realtime/v1/api/broadcast` }
}

// ---------------------------------------------------------------------------------------
// JWT

function b64url(buf) {
  return Buffer.from(buf).toString('base64url')
}

/**
 * HS256 JWT. Default claims: role anon, iat now, exp now + 1 h; `claims` override them
 * (pass `exp: <past>` for expired tokens, `role: undefined` to drop a claim).
 */
export function makeJwt(claims = {}, secret = JWT_SECRET) {
  const now = Math.floor(Date.now() / 1000)
  const body = { role: 'anon', iat: now, exp: now + 3600, ...claims }
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k]
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const payload = b64url(JSON.stringify(body))
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${payload}`).digest('base64url')
  return `${head}.${payload}.${sig}`
}

// ---------------------------------------------------------------------------------------
// small utilities

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Unique room name per test so tests can run concurrently. */
export function roomName(caseId) {
  return `room-${caseId}-${crypto.randomBytes(4).toString('hex')}`
}

/**
 * Poll `predicate` every 10 ms until it returns a truthy value (which is returned).
 * Rejects with a message naming `what` after `timeoutMs`.
 */
export async function waitFor(predicate, timeoutMs = LOCAL_MS, what = 'condition') {
  const deadline = Date.now() + timeoutMs
  let lastErr
  for (;;) {
    try {
      const v = await predicate()
      if (v) return v
    } catch (e) {
      lastErr = e
    }
    if (Date.now() >= deadline) {
      const suffix = lastErr ? ` (last error: ${lastErr.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`)
    }
    await sleep(10)
  }
}

// ---------------------------------------------------------------------------------------
// realtime-js clients

/** The Phoenix Socket inside a RealtimeClient. */
export const phxSocket = (client) => client.socketAdapter.getSocket()
/** The `ws` WebSocket instance currently used by a RealtimeClient (or null). */
export const wsOf = (client) => phxSocket(client).conn ?? null
/** The underlying net.Socket (TCP) of a RealtimeClient's current connection. */
export function tcpOf(client) {
  const ws = wsOf(client)
  if (!ws || !ws._socket) throw new Error('client has no open TCP socket')
  return ws._socket
}

/**
 * Wrap encode/decode and channel creation so the test can see the wire.
 * client.wire = {
 *   sent:    [{topic,event,payload,ref,join_ref,at}]   messages before encoding
 *   sentRaw: [string | ArrayBuffer]                     encoded frames
 *   recv:    [{topic,event,payload,ref,join_ref,at}]   decoded messages
 *   recvRaw: [string | ArrayBuffer]                     raw frames
 *   opens, closes: number
 *   pushes:  [Push]                                     for cleanup
 * }
 */
function instrument(client) {
  const sock = phxSocket(client)
  const wire = { sent: [], sentRaw: [], recv: [], recvRaw: [], opens: 0, closes: 0, pushes: [], phxChannels: [] }
  client.wire = wire
  const enc = sock.encode
  sock.encode = (msg, cb) => {
    wire.sent.push({ ...msg, at: Date.now() })
    return enc(msg, (result) => {
      wire.sentRaw.push(result)
      return cb(result)
    })
  }
  const dec = sock.decode
  sock.decode = (raw, cb) => {
    wire.recvRaw.push(raw)
    return dec(raw, (msg) => {
      wire.recv.push({ ...msg, at: Date.now() })
      return cb(msg)
    })
  }
  sock.onOpen(() => wire.opens++)
  sock.onClose(() => wire.closes++)
  const mkChannel = sock.channel.bind(sock)
  sock.channel = (topic, params) => {
    const ch = mkChannel(topic, params)
    wire.phxChannels.push(ch)
    const push = ch.push.bind(ch)
    ch.push = (...args) => {
      const p = push(...args)
      wire.pushes.push(p)
      return p
    }
    return ch
  }
  return client
}

/** Disconnect through the Phoenix socket (what client.disconnect() does, minus its 10 s timer). */
export function disconnectClient(client) {
  client._cancelPendingDisconnect?.()
  const sock = phxSocket(client)
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000)
    sock.disconnect(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** Full cleanup: close socket, stop every timer the library armed. */
export async function closeClient(client) {
  try {
    await disconnectClient(client)
  } finally {
    const sock = phxSocket(client)
    sock.reconnectTimer.reset()
    sock.clearHeartbeats()
    for (const p of client.wire?.pushes ?? []) p.destroy()
    for (const ch of client.wire?.phxChannels ?? []) {
      ch.rejoinTimer.reset()
      ch.joinPush.destroy()
      ch.pushBuffer.forEach((p) => p.destroy())
    }
  }
}

/**
 * Record presence / broadcast / system callbacks of a channel into an array. Must be called
 * before subscribe(). Entries:
 *   {kind:'presence', event:'sync', state}            state = presenceState() snapshot
 *   {kind:'presence', event:'join'|'leave', key, currentPresences, newPresences|leftPresences}
 *   {kind:'broadcast', filter, payload}
 *   {kind:'system', payload}
 *   {kind:'status', status, err}                       subscribe callback (added by subscribe())
 */
export function recordChannel(channel, { presence = false, broadcast = [], system = false, log = [] } = {}) {
  channel.__log = log
  if (presence) {
    channel.on('presence', { event: 'sync' }, () =>
      log.push({ kind: 'presence', event: 'sync', state: channel.presenceState(), at: Date.now() })
    )
    channel.on('presence', { event: 'join' }, (p) => log.push({ kind: 'presence', ...structuredClone(p), at: Date.now() }))
    channel.on('presence', { event: 'leave' }, (p) => log.push({ kind: 'presence', ...structuredClone(p), at: Date.now() }))
  }
  for (const ev of broadcast) {
    channel.on('broadcast', { event: ev }, (p) =>
      log.push({ kind: 'broadcast', filter: ev, payload: structuredClone(p), at: Date.now() })
    )
  }
  if (system) channel.on('system', {}, (p) => log.push({ kind: 'system', payload: p, at: Date.now() }))
  return log
}

/**
 * Record every 'presence' trigger on the underlying Phoenix channel, whether or not a
 * listener exists (used to prove "no presence callbacks fire").
 */
export function spyPresenceTriggers(channel) {
  const fired = []
  const ph = channel.channelAdapter.getChannel()
  const trigger = ph.trigger.bind(ph)
  ph.trigger = (event, payload, ...rest) => {
    if (event === 'presence') fired.push(payload)
    return trigger(event, payload, ...rest)
  }
  return fired
}

/**
 * channel.subscribe() as a promise: resolves on SUBSCRIBED, rejects on CHANNEL_ERROR /
 * TIMED_OUT / no answer in time. All statuses (also later ones: CLOSED, rejoins) are kept in
 * channel.__statuses and, if recorded, channel.__log.
 */
export function subscribe(channel, timeoutMs = LOCAL_MS + 1000) {
  const statuses = (channel.__statuses ??= [])
  return new Promise((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => {
      done = true
      reject(new Error(`${channel.topic}: not SUBSCRIBED within ${timeoutMs} ms (statuses: ${statuses.join(',') || 'none'})`))
    }, timeoutMs)
    channel.subscribe((status, err) => {
      statuses.push(status)
      channel.__log?.push({ kind: 'status', status, err, at: Date.now() })
      if (done) return
      if (status === 'SUBSCRIBED') {
        done = true
        clearTimeout(timer)
        resolve(channel)
      } else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        done = true
        clearTimeout(timer)
        reject(new Error(`${channel.topic}: ${status}${err ? `: ${err.message}` : ''}`))
      }
    })
  })
}

// log queries
export const presenceEvents = (log, event, key) =>
  log.filter((e) => e.kind === 'presence' && (!event || e.event === event) && (key === undefined || e.key === key))
export const syncs = (log) => presenceEvents(log, 'sync')
export const broadcasts = (log, filter) => log.filter((e) => e.kind === 'broadcast' && (!filter || e.filter === filter))

// ---------------------------------------------------------------------------------------
// per-test harness

class Harness {
  constructor() {
    this.cfg = serverConfig()
    this.clients = []
    this.raws = []
  }

  /**
   * A fresh RealtimeClient (ws transport, JWT apikey, heartbeat = server interval so the
   * server never idles it out). Extra options are passed through.
   */
  client(opts = {}) {
    const { apikey = makeJwt(), ...rest } = opts
    const client = new RealtimeClient(this.cfg.wsEndpoint, {
      transport: WebSocket,
      params: { apikey },
      heartbeatIntervalMs: HB_MS,
      timeout: 5000,
      ...rest,
    })
    instrument(client)
    this.clients.push(client)
    return client
  }

  /**
   * One member = own client + channel on `room`, recorded and (by default) subscribed.
   * opts: key (presence key), config (channel config, shallow-merged; key wins),
   *       presence (register sync/join/leave listeners; default true),
   *       broadcast (event names to listen to), system, vsn, clientOpts, subscribe (default true)
   */
  async member(room, opts = {}) {
    const { key, config = {}, presence = true, broadcast = [], system = false, vsn, clientOpts = {}, subscribe: doSub = true } = opts
    const client = this.client({ ...(vsn ? { vsn } : {}), ...clientOpts })
    const cfg = { ...config }
    if (key !== undefined) cfg.presence = { ...(cfg.presence ?? {}), key }
    const channel = client.channel(room, { config: cfg })
    const log = recordChannel(channel, { presence, broadcast, system })
    const m = { client, channel, log, topic: `realtime:${room}` }
    if (doSub) await subscribe(channel)
    return m
  }

  /** Raw v2 (or v1) frame client on `ws`. */
  async raw(opts = {}) {
    const r = await RawClient.open({ url: this.cfg.wsUrl, ...opts })
    this.raws.push(r)
    return r
  }

  async close() {
    await Promise.allSettled(this.clients.map((c) => closeClient(c)))
    for (const r of this.raws) r.terminate()
  }
}

/** Create a harness for test context `t`; everything it made is closed after the test. */
export function harness(t) {
  const h = new Harness()
  t.after(() => h.close())
  return h
}

// ---------------------------------------------------------------------------------------
// raw frame client (vsn 2.0.0 arrays by default)

/** Kind-3 "user broadcast push" binary frame (docs/realtime-spec.md §2.3). */
export function encodeUserBroadcastPush({ joinRef, ref, topic, event, payload, meta = '', binary = false }) {
  const enc = (s) => Buffer.from(s ?? '', 'utf8')
  const jr = enc(joinRef)
  const rf = enc(ref)
  const tp = enc(topic)
  const ev = enc(event)
  const md = enc(meta)
  const body = binary ? Buffer.from(payload) : enc(JSON.stringify(payload))
  const head = Buffer.from([3, jr.length, rf.length, tp.length, ev.length, md.length, binary ? 0 : 1])
  return Buffer.concat([head, jr, rf, tp, ev, md, body])
}

/** Decode a kind-4 binary frame into the array shape [null, null, topic, 'broadcast', payload]. */
function decodeBinary(buf) {
  if (buf[0] !== 4) return { kind: buf[0], bytes: buf }
  const [topicLen, evLen, metaLen, encoding] = [buf[1], buf[2], buf[3], buf[4]]
  let o = 5
  const topic = buf.subarray(o, (o += topicLen)).toString('utf8')
  const event = buf.subarray(o, (o += evLen)).toString('utf8')
  const meta = buf.subarray(o, (o += metaLen)).toString('utf8')
  const body = buf.subarray(o)
  const payload = { type: 'broadcast', event, payload: encoding === 1 ? JSON.parse(body.toString('utf8')) : body }
  if (meta) payload.meta = JSON.parse(meta)
  return [null, null, topic, 'broadcast', payload]
}

export class RawClient {
  /**
   * opts: url (…/realtime/v1/websocket), apikey, vsn ('2.0.0'), heartbeat (auto-send
   * heartbeats every HB_MS; default true), query (extra params)
   */
  static open({ url, apikey = makeJwt(), vsn = '2.0.0', heartbeat = true, query = {} } = {}) {
    const u = new URL(url)
    u.searchParams.set('apikey', apikey)
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
    u.searchParams.set('vsn', vsn)
    const r = new RawClient(u.toString(), vsn)
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`raw client: no open within ${LOCAL_MS} ms`)), LOCAL_MS)
      r.ws.once('open', () => {
        clearTimeout(t)
        if (heartbeat) r.startHeartbeat()
        resolve(r)
      })
      r.ws.once('error', (e) => {
        clearTimeout(t)
        reject(e)
      })
    })
  }

  constructor(url, vsn) {
    this.url = url
    this.vsn = vsn
    this.ref = 0
    /** [{frame, binary, raw, at}] frame = parsed JSON (array for v2) or decoded kind-4 */
    this.frames = []
    this.waiters = []
    this.closed = false
    this.closeInfo = null
    this.lastSentAt = 0
    this.ws = new WebSocket(url)
    this.ws.on('message', (data, isBinary) => {
      let frame
      if (isBinary) {
        frame = decodeBinary(Buffer.from(data))
      } else {
        const text = data.toString('utf8')
        try {
          frame = JSON.parse(text)
        } catch {
          frame = { unparsable: text }
        }
      }
      const entry = { frame, binary: isBinary, raw: data, at: Date.now() }
      this.frames.push(entry)
      this._check()
    })
    this.ws.on('close', (code, reason) => {
      this.closed = true
      this.closeInfo = { code, reason: reason.toString(), at: Date.now() }
      this.stopHeartbeat()
      this._check()
    })
    this.ws.on('error', () => {})
  }

  nextRef() {
    return String(++this.ref)
  }

  /** Send an array (JSON text), a string (raw text) or a Buffer (binary). */
  send(frame) {
    this.lastSentAt = Date.now()
    if (Buffer.isBuffer(frame)) this.ws.send(frame, { binary: true })
    else if (typeof frame === 'string') this.ws.send(frame)
    else this.ws.send(JSON.stringify(frame))
  }

  startHeartbeat(intervalMs = HB_MS) {
    this.stopHeartbeat()
    this.hbTimer = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.heartbeat()
    }, intervalMs)
    this.hbTimer.unref()
  }

  stopHeartbeat() {
    if (this.hbTimer) clearInterval(this.hbTimer)
    this.hbTimer = null
  }

  /** Send a heartbeat; returns its ref. */
  heartbeat() {
    const ref = this.nextRef()
    if (this.vsn === '1.0.0') this.send({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref })
    else this.send([null, ref, 'phoenix', 'heartbeat', {}])
    return ref
  }

  /** Heartbeat and wait for its ok reply (proves the socket is alive and served). */
  async heartbeatOk(timeoutMs = LOCAL_MS) {
    const ref = this.heartbeat()
    return this.waitFrame((f) => Array.isArray(f) && f[1] === ref && f[3] === 'phx_reply', timeoutMs, `heartbeat reply ref=${ref}`)
  }

  _check() {
    for (const w of [...this.waiters]) {
      const hit = this.frames.slice(w.from).find((e) => w.pred(e.frame, e))
      if (hit) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        clearTimeout(w.timer)
        w.resolve(hit.frame)
      } else if (this.closed) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        clearTimeout(w.timer)
        w.reject(new Error(`raw socket closed (${JSON.stringify(this.closeInfo)}) while waiting for ${w.what}`))
      }
    }
  }

  /** Wait for a frame matching pred(frame, entry), looking at frames from index `from` on. */
  waitFrame(pred, timeoutMs = LOCAL_MS, what = 'frame', from = 0) {
    return new Promise((resolve, reject) => {
      const w = { pred, from, what, resolve, reject }
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(new Error(`raw: timed out after ${timeoutMs} ms waiting for ${what}; frames: ${this.describe()}`))
      }, timeoutMs)
      this.waiters.push(w)
      this._check()
    })
  }

  /** Frames whose topic/event match (v2 array shape). */
  framesFor(topic, event) {
    return this.frames.map((e) => e.frame).filter((f) => Array.isArray(f) && f[2] === topic && (!event || f[3] === event))
  }

  describe(max = 20) {
    return JSON.stringify(this.frames.slice(-max).map((e) => (e.binary && !Array.isArray(e.frame) ? `<binary kind ${e.frame.kind}>` : e.frame)))
  }

  /**
   * phx_join with the default realtime-js config, shallow-merged with `config`.
   * Returns {jr, reply} (reply = the whole 5-array).
   */
  async join(topic, config = {}, { extra = {}, timeoutMs = LOCAL_MS } = {}) {
    const jr = this.nextRef()
    const payload = {
      config: {
        broadcast: { ack: false, self: false },
        presence: { key: '', enabled: false },
        postgres_changes: [],
        private: false,
        ...config,
      },
      ...extra,
    }
    this.send([jr, jr, topic, 'phx_join', payload])
    const reply = await this.waitFrame(
      (f) => Array.isArray(f) && f[1] === jr && f[3] === 'phx_reply',
      timeoutMs,
      `join reply for ${topic} ref=${jr}`
    )
    return { jr, reply }
  }

  /** Channel push; waits for and returns the reply array. */
  async push(topic, jr, event, payload, timeoutMs = LOCAL_MS) {
    const ref = this.nextRef()
    this.send([jr, ref, topic, event, payload])
    const reply = await this.waitFrame(
      (f) => Array.isArray(f) && f[1] === ref && f[3] === 'phx_reply',
      timeoutMs,
      `reply to ${event} ref=${ref}`
    )
    return { ref, reply }
  }

  close() {
    this.stopHeartbeat()
    this.ws.close()
  }

  terminate() {
    this.stopHeartbeat()
    for (const w of this.waiters) clearTimeout(w.timer)
    this.waiters = []
    this.ws.terminate()
  }
}
