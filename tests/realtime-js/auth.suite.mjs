// Auth and limits through the real realtime-js: docs/realtime-spec.md §9 cases 25–30. Runs against a
// server started with ROLLCALL_JWT_SECRET = the test secret, max 3 channels per connection
// and Supabase's presence rate (5 calls / 30 s). The Rust harness runs this file separately:
//   ROLLCALL_URL=... node --test auth.suite.mjs
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  WebSocket, harness, roomName, waitFor, sleep, makeJwt, subscribe, recordChannel,
  presenceEvents, serverConfig, LOCAL_MS, TEST_TIMEOUT,
} from './helpers.mjs'

const now = () => Math.floor(Date.now() / 1000)
const statuses = (log) => log.filter((e) => e.kind === 'status').map((e) => e.status)

describe('auth and limits', { concurrency: true }, () => {
  test('case 25: join rejected for an expired access token', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const client = h.client()
    await client.setAuth(makeJwt({ exp: now() - 60 }))
    const channel = client.channel(roomName(25))
    const log = recordChannel(channel, { presence: true })
    const err = await subscribe(channel).then(() => null, (e) => e)
    assert.ok(err, 'subscribe must fail')
    const failed = log.find((e) => e.kind === 'status' && e.status === 'CHANNEL_ERROR')
    assert.ok(failed, `CHANNEL_ERROR seen (${statuses(log)})`)
    assert.match(failed.err.message, /^InvalidJWTToken: Token has expired/)
  })

  test('case 26: connect rejected for an apikey that is not a JWT', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const client = h.client({ apikey: 'not-a-jwt' })
    const channel = client.channel(roomName(26))
    const outcome = await subscribe(channel, 3000).then(() => 'SUBSCRIBED', () => 'never subscribed')
    assert.equal(outcome, 'never subscribed')
    // raw variant: the upgrade itself is answered 401 with Supabase's JSON body
    const { wsUrl } = serverConfig()
    const res = await new Promise((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}?apikey=not-a-jwt&vsn=2.0.0`)
      ws.on('unexpected-response', (req, r) => {
        let body = ''
        r.on('data', (c) => (body += c))
        r.on('end', () => {
          resolve({ status: r.statusCode, body })
          req.destroy()
          ws.terminate()
        })
      })
      ws.on('open', () => reject(new Error('upgrade unexpectedly succeeded')))
      ws.on('error', () => {})
    })
    assert.equal(res.status, 401)
    assert.deepEqual(JSON.parse(res.body), { error: 'The token provided is not a valid JWT' })
  })

  test('case 27: token expiry while joined ends the channel', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(27)
    const observer = await h.member(room, { key: 'obs' })
    const client = h.client()
    await client.setAuth(makeJwt({ exp: now() + 3 }))
    const channel = client.channel(room, { config: { presence: { key: 'short' } } })
    const log = recordChannel(channel, { presence: true, system: true })
    await subscribe(channel)
    assert.equal(await channel.track({ s: 1 }), 'ok')
    await waitFor(() => observer.channel.presenceState().short, LOCAL_MS, 'observer sees short')
    await waitFor(() => log.some((e) => e.kind === 'system'), 6000, 'system message')
    const sys = log.find((e) => e.kind === 'system').payload
    assert.equal(sys.extension, 'system')
    assert.equal(sys.status, 'error')
    assert.match(sys.message, /^Token has expired/)
    assert.equal(sys.channel, room)
    await waitFor(() => statuses(log).includes('CLOSED'), LOCAL_MS, 'CLOSED after the system message')
    await waitFor(() => presenceEvents(observer.log, 'leave', 'short').length === 1, LOCAL_MS, 'observer sees the leave')
  })

  test('case 28: token refresh keeps the channel', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(28)
    const client = h.client()
    await client.setAuth(makeJwt({ exp: now() + 3 }))
    const channel = client.channel(room, { config: { presence: { key: 'fresh' } } })
    const log = recordChannel(channel, { presence: true, system: true })
    await subscribe(channel)
    await client.setAuth(makeJwt({ exp: now() + 3600 }))
    await waitFor(
      () => client.wire.sent.some((m) => m.event === 'access_token' && m.topic === `realtime:${room}`),
      LOCAL_MS, 'access_token pushed'
    )
    await sleep(3500)
    assert.equal(channel.state, 'joined', 'still joined after the first token expired')
    assert.ok(!log.some((e) => e.kind === 'system'), 'no system error')
    assert.ok(
      !client.wire.recv.some((m) => m.event === 'phx_reply' && client.wire.sent.some((s) => s.event === 'access_token' && s.ref === m.ref)),
      'the server sends no reply to access_token'
    )
    assert.equal(await channel.track({ after: 'refresh' }), 'ok')
  })

  test('case 29: channel limit', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const client = h.client()
    const base = roomName(29)
    const joined = []
    for (let i = 0; i < 3; i++) joined.push(await subscribe(client.channel(`${base}-${i}`)))
    const fourth = client.channel(`${base}-3`)
    const log = recordChannel(fourth)
    const err = await subscribe(fourth).then(() => null, (e) => e)
    assert.ok(err, '4th channel refused')
    const failed = log.find((e) => e.kind === 'status' && e.status === 'CHANNEL_ERROR')
    assert.equal(failed.err.message, 'ChannelRateLimitReached: Too many channels')
    for (const ch of joined) assert.equal(ch.state, 'joined')
  })

  test('case 30: client presence rate limit', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(30)
    const observer = await h.member(room, { key: 'obs' })
    const A = await h.member(room, { key: 'spammer', system: true })
    const results = []
    for (let i = 0; i < 5; i++) results.push(await A.channel.track({ n: i }))
    assert.deepEqual(results, ['ok', 'ok', 'ok', 'ok', 'ok'])
    A.channel.track({ n: 5 }) // the sixth: no reply, the channel is closed
    await waitFor(() => A.log.some((e) => e.kind === 'system'), LOCAL_MS, 'system message')
    const sys = A.log.find((e) => e.kind === 'system').payload
    assert.equal(sys.status, 'error')
    assert.equal(sys.message, 'Client presence rate limit exceeded')
    await waitFor(() => statuses(A.log).includes('CLOSED'), LOCAL_MS, 'CLOSED')
    await waitFor(() => presenceEvents(observer.log, 'leave', 'spammer').length >= 1, LOCAL_MS, 'observer sees the leave')
  })
})
