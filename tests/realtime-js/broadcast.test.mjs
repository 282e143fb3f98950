// Broadcast over the socket and REST, and mixed protocol versions.
// docs/realtime-spec.md §2.3, §5, §9 cases 20–24, 32.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  harness, roomName, waitFor, sleep, broadcasts, presenceEvents, syncs, makeJwt, serverConfig,
  encodeUserBroadcastPush, LOCAL_MS, TEST_TIMEOUT,
} from './helpers.mjs'

const isKind = (raw, kind) => raw instanceof ArrayBuffer && new Uint8Array(raw)[0] === kind

describe('broadcast', { concurrency: true }, () => {
  test('case 20: broadcast default (self false, ack false)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(20)
    const B = await h.member(room, { presence: false, broadcast: ['cursor'] })
    const A = await h.member(room, { presence: false, broadcast: ['cursor'] })

    const t0 = Date.now()
    assert.equal(await A.channel.send({ type: 'broadcast', event: 'cursor', payload: { x: 1 } }), 'ok')
    assert.ok(Date.now() - t0 < 200, 'send resolves immediately without ack')
    const sent = A.client.wire.sent.find((m) => m.event === 'broadcast')
    const sentIdx = A.client.wire.sent.indexOf(sent)
    assert.ok(isKind(A.client.wire.sentRaw[sentIdx], 3), 'realtime-js sent a kind-3 binary frame')

    const got = await waitFor(() => broadcasts(B.log, 'cursor')[0], LOCAL_MS, 'B receives cursor')
    assert.deepEqual(got.payload, { type: 'broadcast', event: 'cursor', payload: { x: 1 } })

    await sleep(1000)
    assert.equal(broadcasts(A.log).length, 0, 'sender does not receive its own broadcast (self false)')
    assert.equal(broadcasts(B.log).length, 1, 'exactly one delivery')
    assert.equal(
      A.client.wire.recv.filter((m) => m.event === 'phx_reply' && m.ref === sent.ref).length,
      0,
      'no reply to a broadcast without ack'
    )
    // what the receiver got on the wire: a text array or a kind-4 binary frame, never kinds 0-2
    for (const raw of B.client.wire.recvRaw) {
      if (typeof raw === 'string') assert.ok(Array.isArray(JSON.parse(raw)))
      else assert.ok(isKind(raw, 4), 'binary frames to realtime-js must be kind 4')
    }
  })

  test('case 21: broadcast self', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(21)
    const B = await h.member(room, { presence: false, broadcast: ['cursor'] })
    const A = await h.member(room, { presence: false, broadcast: ['cursor'], config: { broadcast: { self: true } } })
    const join = A.client.wire.sent.find((m) => m.event === 'phx_join')
    assert.deepEqual(join.payload.config.broadcast, { self: true }, 'shallow merge: no ack key')

    assert.equal(await A.channel.send({ type: 'broadcast', event: 'cursor', payload: { x: 1 } }), 'ok')
    const own = await waitFor(() => broadcasts(A.log, 'cursor')[0], LOCAL_MS, 'A receives its own cursor')
    assert.deepEqual(own.payload, { type: 'broadcast', event: 'cursor', payload: { x: 1 } })
    await waitFor(() => broadcasts(B.log, 'cursor').length, LOCAL_MS, 'B receives it too')
    await sleep(300)
    assert.equal(broadcasts(A.log).length, 1, 'delivered to self once')
  })

  test('case 22: broadcast ack (+ raw check)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(22)
    const topic = `realtime:${room}`
    const B = await h.member(room, { presence: false, broadcast: ['cursor'] })
    const A = await h.member(room, { presence: false, config: { broadcast: { ack: true } } })

    const res = await A.channel.send({ type: 'broadcast', event: 'cursor', payload: { x: 1 } })
    assert.equal(res, 'ok')
    const sent = A.client.wire.sent.find((m) => m.event === 'broadcast')
    const reply = A.client.wire.recv.find((m) => m.event === 'phx_reply' && m.ref === sent.ref)
    assert.ok(reply, 'send resolved only after the server reply arrived')
    assert.equal(reply.payload.status, 'ok')
    assert.equal(reply.join_ref, sent.join_ref)
    await waitFor(() => broadcasts(B.log, 'cursor').length === 1, LOCAL_MS, 'B receives acked broadcast')

    // raw: kind-3 binary push on an ack:true join -> [jr, ref, topic, "phx_reply", {status ok}]
    const r = await h.raw()
    const { jr, reply: jrep } = await r.join(topic, { broadcast: { ack: true, self: false } })
    assert.equal(jrep[4].status, 'ok')
    const ref = r.nextRef()
    r.send(encodeUserBroadcastPush({ joinRef: jr, ref, topic, event: 'cursor', payload: { x: 2 } }))
    const ack = await r.waitFrame((f) => Array.isArray(f) && f[1] === ref && f[3] === 'phx_reply', LOCAL_MS, 'ack for kind-3 push')
    assert.deepEqual(ack, [jr, ref, topic, 'phx_reply', { status: 'ok', response: {} }])
    const got2 = await waitFor(() => broadcasts(B.log, 'cursor').find((e) => e.payload.payload.x === 2), LOCAL_MS, 'B receives raw kind-3 broadcast')
    assert.deepEqual(got2.payload, { type: 'broadcast', event: 'cursor', payload: { x: 2 } })

    // raw: JSON text broadcast push is acked the same way
    const { ref: ref3, reply: ack3 } = await r.push(topic, jr, 'broadcast', { type: 'broadcast', event: 'cursor', payload: { x: 3 } })
    assert.deepEqual(ack3, [jr, ref3, topic, 'phx_reply', { status: 'ok', response: {} }])
    const got3 = await waitFor(() => broadcasts(B.log, 'cursor').find((e) => e.payload.payload.x === 3), LOCAL_MS, 'B receives raw text broadcast')
    assert.deepEqual(got3.payload, { type: 'broadcast', event: 'cursor', payload: { x: 3 } })
  })

  test('case 23: event filtering', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(23)
    const B = await h.member(room, { presence: false, broadcast: ['a', '*', 'A'] })
    const A = await h.member(room, { presence: false })
    assert.equal(await A.channel.send({ type: 'broadcast', event: 'a', payload: { n: 1 } }), 'ok')
    assert.equal(await A.channel.send({ type: 'broadcast', event: 'b', payload: { n: 2 } }), 'ok')
    await waitFor(() => broadcasts(B.log, '*').length === 2, LOCAL_MS, "'*' fires twice")
    await sleep(300)
    assert.equal(broadcasts(B.log, 'a').length, 1, "'a' fires once")
    assert.equal(broadcasts(B.log, '*').length, 2, "'*' fires twice")
    assert.equal(broadcasts(B.log, 'A').length, 1, "'A' fires for a (case-insensitive)")
    assert.deepEqual(broadcasts(B.log, 'a')[0].payload, { type: 'broadcast', event: 'a', payload: { n: 1 } })
    assert.deepEqual(broadcasts(B.log, '*').map((e) => e.payload.event), ['a', 'b'], 'in order')
  })

  test('case 24: mixed protocol versions', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(24)
    const B = await h.member(room, { key: 'b', vsn: '1.0.0', broadcast: ['cursor'] })
    const A = await h.member(room, { key: 'a', broadcast: ['cursor'] })
    assert.match(B.client.endpointURL(), /vsn=1\.0\.0$/)
    assert.match(A.client.endpointURL(), /vsn=2\.0\.0$/)
    await waitFor(() => syncs(A.log).length && syncs(B.log).length, LOCAL_MS, 'initial syncs')

    // case 5 both ways
    assert.equal(await A.channel.track({ status: 'online' }), 'ok')
    const bj = await waitFor(() => presenceEvents(B.log, 'join', 'a')[0], LOCAL_MS, 'v1 B sees join a')
    assert.deepEqual(bj.currentPresences, [])
    assert.equal(bj.newPresences.length, 1)
    assert.equal(bj.newPresences[0].status, 'online')
    assert.equal(typeof bj.newPresences[0].presence_ref, 'string')
    assert.deepEqual(Object.keys(bj.newPresences[0]).sort(), ['presence_ref', 'status'])

    assert.equal(await B.channel.track({ status: 'online' }), 'ok')
    const aj = await waitFor(() => presenceEvents(A.log, 'join', 'b')[0], LOCAL_MS, 'v2 A sees join b')
    assert.deepEqual(aj.currentPresences, [])
    assert.equal(aj.newPresences.length, 1)
    assert.deepEqual(Object.keys(aj.newPresences[0]).sort(), ['presence_ref', 'status'])
    assert.equal(aj.newPresences[0].status, 'online')

    await waitFor(() => A.channel.presenceState().a && B.channel.presenceState().b, LOCAL_MS, 'own presences applied')
    await waitFor(() => B.channel.presenceState().a && A.channel.presenceState().b, LOCAL_MS, 'both see both')
    assert.deepEqual(A.channel.presenceState(), B.channel.presenceState(), 'identical presence state on v1 and v2')

    // case 20 both ways
    assert.equal(await A.channel.send({ type: 'broadcast', event: 'cursor', payload: { x: 1 } }), 'ok')
    assert.equal(await B.channel.send({ type: 'broadcast', event: 'cursor', payload: { x: 2 } }), 'ok')
    const toB = await waitFor(() => broadcasts(B.log, 'cursor')[0], LOCAL_MS, 'v1 B receives v2 broadcast')
    const toA = await waitFor(() => broadcasts(A.log, 'cursor')[0], LOCAL_MS, 'v2 A receives v1 broadcast')
    assert.deepEqual(toB.payload, { type: 'broadcast', event: 'cursor', payload: { x: 1 } })
    assert.deepEqual(toA.payload, { type: 'broadcast', event: 'cursor', payload: { x: 2 } })
    await sleep(300)
    assert.equal(broadcasts(A.log).length, 1)
    assert.equal(broadcasts(B.log).length, 1)

    // wire formats: v1 gets JSON objects (topic/event/payload/ref), v2 gets arrays or kind 4
    assert.ok(B.client.wire.recvRaw.length > 0)
    for (const raw of B.client.wire.recvRaw) {
      assert.equal(typeof raw, 'string', 'v1 client gets text frames only')
      const obj = JSON.parse(raw)
      assert.ok(obj && typeof obj === 'object' && !Array.isArray(obj), `v1 frame is an object: ${raw}`)
      for (const k of ['topic', 'event', 'payload', 'ref']) assert.ok(k in obj, `v1 frame has ${k}: ${raw}`)
    }
    for (const raw of A.client.wire.recvRaw) {
      if (typeof raw === 'string') {
        const arr = JSON.parse(raw)
        assert.ok(Array.isArray(arr) && arr.length === 5, `v2 text frame is a 5-array: ${raw}`)
      } else {
        assert.ok(isKind(raw, 4), 'v2 binary frame is kind 4')
      }
    }
    // v1 sender's broadcast went out as a JSON text object, not binary
    const bSentIdx = B.client.wire.sent.findIndex((m) => m.event === 'broadcast')
    assert.equal(typeof B.client.wire.sentRaw[bSentIdx], 'string')
  })

  test('case 32: REST broadcast', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(32)
    const B = await h.member(room, { presence: false, broadcast: ['e'] })
    const { broadcastUrl } = serverConfig()
    const res = await fetch(broadcastUrl, {
      method: 'POST',
      headers: { Authorization: `Bearer ${makeJwt()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ topic: room, event: 'e', payload: { v: 1 } }] }),
      signal: AbortSignal.timeout(LOCAL_MS),
    })
    await res.arrayBuffer()
    assert.equal(res.status, 202)
    const got = await waitFor(() => broadcasts(B.log, 'e')[0], LOCAL_MS, 'B receives REST broadcast')
    assert.deepEqual(got.payload, { type: 'broadcast', event: 'e', payload: { v: 1 } })
  })
})
