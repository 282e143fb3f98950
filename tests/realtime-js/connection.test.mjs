// Connection-level conformance: handshake, heartbeat, plain join, server idle detection,
// malformed frames. docs/realtime-spec.md §1, §2.2, §3.1, §3.3, §3.7, §9 cases 1–3.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  harness, roomName, waitFor, sleep, wsOf, makeJwt, serverConfig, presenceEvents,
  HB_MS, MISSED, IDLE_MS, LOCAL_MS, TEST_TIMEOUT, JOIN_ERROR_DELAY_MS,
} from './helpers.mjs'

describe('connection', { concurrency: true }, () => {
  test('case 1: URL & handshake', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { wsEndpoint } = serverConfig()
    const apikey = makeJwt()

    const c2 = h.client({ apikey })
    assert.equal(c2.endpointURL(), `${wsEndpoint}/websocket?apikey=${apikey}&vsn=2.0.0`)
    c2.connect()
    await waitFor(() => c2.isConnected(), LOCAL_MS, 'v2 client isConnected()')
    assert.equal(wsOf(c2).protocol, '', 'server must not select a subprotocol')

    const c1 = h.client({ apikey, vsn: '1.0.0' })
    assert.equal(c1.endpointURL(), `${wsEndpoint}/websocket?apikey=${apikey}&vsn=1.0.0`)
    c1.connect()
    await waitFor(() => c1.isConnected(), LOCAL_MS, 'v1 client isConnected()')
    assert.equal(wsOf(c1).protocol, '')
  })

  test('case 2: heartbeat', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const seen = []
    const c = h.client({ heartbeatIntervalMs: 500, heartbeatCallback: (status) => seen.push(status) })
    c.connect()
    await waitFor(() => c.isConnected(), LOCAL_MS, 'connected')
    await sleep(3000)
    const okCount = seen.filter((s) => s === 'ok').length
    assert.ok(okCount >= 5, `expected >= 5 heartbeat ok within 3 s, got ${okCount} (${seen.join(',')})`)
    // every ok directly follows a sent; nothing else (timeout/error) is reported
    seen.forEach((s, i) => {
      assert.ok(s === 'sent' || s === 'ok', `unexpected heartbeat status ${s} (${seen.join(',')})`)
      if (s === 'ok') assert.equal(seen[i - 1], 'sent', `ok without preceding sent (${seen.join(',')})`)
    })
    assert.ok(c.isConnected(), 'socket stays open')
    assert.equal(c.wire.opens, 1, 'no reconnect happened')
    // the replies on the wire have the documented shape
    const hbReplies = c.wire.recv.filter((m) => m.topic === 'phoenix')
    assert.ok(hbReplies.length >= 5)
    for (const m of hbReplies) {
      assert.equal(m.event, 'phx_reply')
      assert.equal(m.join_ref, null)
      assert.deepEqual(m.payload, { status: 'ok', response: {} })
    }
  })

  test('case 3: plain join (+ raw variant)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(3)
    const topic = `realtime:${room}`

    const m = await h.member(room, { presence: false })
    assert.equal(m.channel.state, 'joined')
    assert.deepEqual(m.channel.__statuses, ['SUBSCRIBED'])

    // raw variant
    const r = await h.raw()
    const { jr, reply } = await r.join(topic)
    assert.equal(reply.length, 5)
    assert.deepEqual(reply.slice(0, 4), [jr, jr, topic, 'phx_reply'])
    assert.equal(reply[4].status, 'ok')
    assert.equal(typeof reply[4].response, 'object')
    assert.ok(reply[4].response !== null && !Array.isArray(reply[4].response))
    if ('postgres_changes' in reply[4].response) assert.deepEqual(reply[4].response.postgres_changes, [])

    await sleep(500)
    assert.deepEqual(r.framesFor(topic, 'presence_state'), [], 'no presence_state when presence.enabled is false')
    assert.equal(m.client.wire.recv.filter((x) => x.event === 'presence_state').length, 0,
      'library client with presence disabled gets no presence_state either')
  })

  test('heartbeat keeps a client online', { timeout: (MISSED + 1) * HB_MS + TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName('hb')
    const B = await h.member(room, { key: 'observer' })
    const seen = []
    const A = await h.member(room, {
      key: 'hb',
      clientOpts: { heartbeatIntervalMs: HB_MS, heartbeatCallback: (s) => seen.push(s) },
    })
    assert.equal(await A.channel.track({ alive: true }), 'ok')
    await waitFor(() => presenceEvents(B.log, 'join', 'hb').length, LOCAL_MS, 'observer sees join hb')

    await sleep((MISSED + 1) * HB_MS)

    assert.equal(presenceEvents(B.log, 'leave', 'hb').length, 0, 'no leave for a heartbeating client')
    assert.equal(B.channel.presenceState().hb?.length, 1, 'still present')
    assert.ok(A.client.isConnected())
    assert.equal(A.client.wire.opens, 1, 'tracked client never reconnected')
    assert.equal(A.client.wire.closes, 0)
    assert.ok(seen.filter((s) => s === 'ok').length >= MISSED - 1, `heartbeats answered (${seen.join(',')})`)
    assert.ok(!seen.includes('timeout'))
  })

  test('dead client is removed once', { timeout: IDLE_MS + 3 * HB_MS + TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName('dead')
    const topic = `realtime:${room}`
    const B = await h.member(room, { key: 'observer' })

    const r = await h.raw({ heartbeat: false })
    const { jr, reply } = await r.join(topic, { presence: { key: 'dead', enabled: true } })
    assert.equal(reply[4].status, 'ok')
    const { reply: trackReply } = await r.push(topic, jr, 'presence', { type: 'presence', event: 'track', payload: { d: 1 } })
    assert.equal(trackReply[4].status, 'ok')
    const silentSince = r.lastSentAt
    await waitFor(() => presenceEvents(B.log, 'join', 'dead').length, LOCAL_MS, 'observer sees join dead')

    // from now on the raw client sends nothing but keeps its socket open
    const deadline = IDLE_MS + 2 * HB_MS
    const leave = await waitFor(
      () => presenceEvents(B.log, 'leave', 'dead')[0],
      deadline - (Date.now() - silentSince) + 50,
      `leave for 'dead' within ${deadline} ms of silence`
    )
    assert.ok(leave.at - silentSince <= deadline + 50, `leave after ${leave.at - silentSince} ms > ${deadline} ms`)
    assert.deepEqual(leave.currentPresences, [])
    assert.equal(leave.leftPresences.length, 1)
    assert.equal(leave.leftPresences[0].d, 1)

    await sleep(HB_MS)
    assert.equal(presenceEvents(B.log, 'leave', 'dead').length, 1, 'exactly one leave')
    assert.equal(B.channel.presenceState().dead, undefined)
    assert.ok(r.closed, 'server closed the idle connection')
    assert.ok(B.client.isConnected(), 'observer unaffected')
  })

  test('raw: invalid JSON and wrong-arity frames are ignored, socket stays open', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const r = await h.raw()
    r.send('this is {not json')
    r.send('[1, 2')
    r.send('')
    r.send(JSON.stringify(['j1', 'r1', 'realtime:x']))
    r.send(JSON.stringify([null, 'r2', 'phoenix', 'heartbeat']))
    r.send(JSON.stringify([]))
    r.send(JSON.stringify({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: 'r3' })) // v1 object on a v2 socket
    r.send(JSON.stringify('just a string'))
    r.send(JSON.stringify(42))
    const reply = await r.heartbeatOk()
    assert.deepEqual(reply.slice(2), ['phoenix', 'phx_reply', { status: 'ok', response: {} }])
    assert.equal(reply[0], null)
    assert.ok(!r.closed)
    await sleep(200)
    assert.ok(!r.closed, 'socket still open after malformed frames')
    assert.ok((await r.heartbeatOk())[4].status === 'ok')
  })

  test('raw: push to unknown topic foo:bar gets "unmatched topic"', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const r = await h.raw()
    const expected = { status: 'error', response: { reason: 'unmatched topic' } }

    const jr = r.nextRef()
    r.send([jr, jr, 'foo:bar', 'phx_join', {}])
    const joinReply = await r.waitFrame((f) => Array.isArray(f) && f[1] === jr && f[3] === 'phx_reply', LOCAL_MS + JOIN_ERROR_DELAY_MS, 'reply to join foo:bar')
    assert.deepEqual(joinReply, [jr, jr, 'foo:bar', 'phx_reply', expected])

    const { ref, reply } = await r.push('foo:bar', null, 'custom', { a: 1 })
    assert.deepEqual(reply, [null, ref, 'foo:bar', 'phx_reply', expected])

    assert.ok((await r.heartbeatOk())[4].status === 'ok')
  })

  test('raw: phx_leave for a topic that is not joined gets ok', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const r = await h.raw()
    const topic = `realtime:${roomName('leave-unjoined')}`
    const { ref, reply } = await r.push(topic, '77', 'phx_leave', {})
    assert.deepEqual(reply, ['77', ref, topic, 'phx_reply', { status: 'ok', response: {} }])
  })

  test('raw: phx_join with postgres_changes is rejected (+ library)', { timeout: TEST_TIMEOUT + JOIN_ERROR_DELAY_MS }, async (t) => {
    const h = harness(t)
    const room = roomName('pg')
    const topic = `realtime:${room}`
    const r = await h.raw()
    const { jr, reply } = await r.join(
      topic,
      { postgres_changes: [{ event: '*', schema: 'public', table: 'messages' }] },
      { timeoutMs: LOCAL_MS + JOIN_ERROR_DELAY_MS }
    )
    assert.deepEqual(reply.slice(0, 4), [jr, jr, topic, 'phx_reply'])
    assert.equal(reply[4].status, 'error')
    assert.equal(typeof reply[4].response?.reason, 'string')
    assert.match(reply[4].response.reason, /postgres_changes/)
    assert.ok((await r.heartbeatOk())[4].status === 'ok', 'socket still usable')

    // the library reports CHANNEL_ERROR with the reason
    const c = h.client()
    const ch = c.channel(room).on('postgres_changes', { event: '*', schema: 'public', table: 'messages' }, () => {})
    const err = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no CHANNEL_ERROR')), LOCAL_MS + JOIN_ERROR_DELAY_MS)
      ch.subscribe((status, e) => {
        if (status === 'CHANNEL_ERROR') {
          clearTimeout(timer)
          resolve(e)
        } else if (status === 'SUBSCRIBED') {
          clearTimeout(timer)
          reject(new Error('postgres_changes join must not be SUBSCRIBED'))
        }
      })
    })
    assert.match(err.message, /postgres_changes/)
  })
})
