// Membership lifecycle: leave, disconnect, abrupt drop, same key on two sockets,
// server-generated keys, reconnect. docs/realtime-spec.md §3.4, §3.8, §4.2, §4.6, §9 cases 11–16, 31.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  harness, roomName, waitFor, sleep, presenceEvents, syncs, disconnectClient, tcpOf,
  HB_MS, IDLE_MS, LOCAL_MS, TEST_TIMEOUT,
} from './helpers.mjs'

async function trackAndSee(member, meta, observer, key) {
  assert.equal(await member.channel.track(meta), 'ok')
  await waitFor(
    () => (observer.channel.presenceState()[key] ?? []).some((p) => Object.entries(meta).every(([k, v]) => p[k] === v)),
    LOCAL_MS,
    `observer sees ${key}=${JSON.stringify(meta)}`
  )
}

/** Server-side detection window for a connection that vanished without a close frame. */
const DROP_WINDOW = IDLE_MS + 2 * HB_MS

describe('lifecycle', { concurrency: true }, () => {
  test('case 11: leave removes presence (+ raw variant)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(11)
    const topic = `realtime:${room}`
    const B = await h.member(room, { key: 'b' })
    const A = await h.member(room, { key: 'a' })
    await trackAndSee(A, { s: 1 }, B, 'a')

    assert.equal(await A.client.removeChannel(A.channel), 'ok')
    assert.ok(A.channel.__statuses.includes('CLOSED'), `subscribe callback got CLOSED (${A.channel.__statuses})`)
    assert.equal(A.channel.state, 'closed')
    await waitFor(() => presenceEvents(B.log, 'leave', 'a').length, LOCAL_MS, 'B gets leave for a')
    await waitFor(() => B.channel.presenceState().a === undefined, LOCAL_MS, 'a gone from B state')

    // raw variant: phx_leave -> reply ok {} with the leave's ref, then phx_close with ref == join_ref
    const r = await h.raw()
    const { jr, reply } = await r.join(topic, { presence: { key: 'r', enabled: false } })
    assert.equal(reply[4].status, 'ok')
    const { reply: tr } = await r.push(topic, jr, 'presence', { type: 'presence', event: 'track', payload: { raw: true } })
    assert.equal(tr[4].status, 'ok')
    await waitFor(() => B.channel.presenceState().r?.length === 1, LOCAL_MS, 'B sees r')

    const from = r.frames.length
    const leaveRef = r.nextRef()
    r.send([jr, leaveRef, topic, 'phx_leave', {}])
    const close = await r.waitFrame((f) => Array.isArray(f) && f[2] === topic && f[3] === 'phx_close', LOCAL_MS, 'phx_close', from)
    assert.deepEqual(close, [jr, jr, topic, 'phx_close', {}])
    const later = r.frames.slice(from).map((e) => e.frame).filter((f) => Array.isArray(f) && f[2] === topic)
    const replyIdx = later.findIndex((f) => f[3] === 'phx_reply' && f[1] === leaveRef)
    const closeIdx = later.findIndex((f) => f[3] === 'phx_close')
    assert.ok(replyIdx >= 0, 'phx_leave got a reply')
    assert.deepEqual(later[replyIdx], [jr, leaveRef, topic, 'phx_reply', { status: 'ok', response: {} }])
    assert.ok(replyIdx < closeIdx, 'reply before phx_close')
    await waitFor(() => presenceEvents(B.log, 'leave', 'r').length, LOCAL_MS, 'B gets leave for r')
    assert.ok(!r.closed, 'socket stays open after leaving the channel')
  })

  test('case 12: disconnect removes presence', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(12)
    const B = await h.member(room, { key: 'b' })
    const A = await h.member(room, { key: 'a' })
    await trackAndSee(A, { s: 1 }, B, 'a')

    await disconnectClient(A.client) // == A.client.disconnect() without its stray 10 s timer
    assert.ok(!A.client.isConnected())
    const leave = await waitFor(() => presenceEvents(B.log, 'leave', 'a')[0], LOCAL_MS, 'B gets leave for a')
    assert.deepEqual(leave.currentPresences, [])
    await waitFor(() => B.channel.presenceState().a === undefined, LOCAL_MS, 'a gone from state')
  })

  test('case 13: abrupt drop removes presence', { timeout: DROP_WINDOW + TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(13)
    const B = await h.member(room, { key: 'b' })
    // no quick reconnect, so only the drop itself is observed
    const A = await h.member(room, { key: 'a', clientOpts: { reconnectAfterMs: () => 60_000 } })
    await trackAndSee(A, { s: 1 }, B, 'a')

    tcpOf(A.client).destroy() // TCP FIN, no WebSocket close frame
    await waitFor(() => presenceEvents(B.log, 'leave', 'a').length, DROP_WINDOW, `B gets leave for a within ${DROP_WINDOW} ms`)
    await waitFor(() => B.channel.presenceState().a === undefined, LOCAL_MS, 'a gone from state')
  })

  test('case 14: same key, two sockets', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(14)
    const B = await h.member(room, { key: 'b' })
    const A1 = await h.member(room, { key: 'u' })
    const A2 = await h.member(room, { key: 'u' })
    assert.equal(await A1.channel.track({ d: 1 }), 'ok')
    assert.equal(await A2.channel.track({ d: 2 }), 'ok')

    await waitFor(() => B.channel.presenceState().u?.length === 2, LOCAL_MS, 'B sees two metas under u')
    const u = B.channel.presenceState().u
    assert.notEqual(u[0].presence_ref, u[1].presence_ref)
    assert.deepEqual(new Set(u.map((p) => p.d)), new Set([1, 2]))

    const mark = B.log.length
    await disconnectClient(A1.client)
    const leave = await waitFor(() => presenceEvents(B.log.slice(mark), 'leave', 'u')[0], LOCAL_MS, 'leave for u')
    assert.equal(leave.leftPresences.length, 1)
    assert.equal(leave.leftPresences[0].d, 1)
    assert.equal(leave.currentPresences.length, 1)
    assert.equal(leave.currentPresences[0].d, 2)
    await sleep(200)
    assert.equal(B.channel.presenceState().u.length, 1)
    assert.equal(B.channel.presenceState().u[0].d, 2)
    assert.equal(presenceEvents(B.log.slice(mark), 'leave').length, 1, 'only one leave')
  })

  // cases 15 and 16 share a setup
  async function emptyKeySetup(h, room) {
    const B = await h.member(room, { key: 'observer' })
    const M1 = await h.member(room) // default config: key '' (+ sync listener)
    const M2 = await h.member(room)
    assert.equal(M1.channel.params.config.presence.key, '')
    assert.equal(await M1.channel.track({ n: 1 }), 'ok')
    assert.equal(await M2.channel.track({ n: 2 }), 'ok')
    await waitFor(() => Object.keys(B.channel.presenceState()).length === 2, LOCAL_MS, 'observer sees two keys')
    const st = B.channel.presenceState()
    const k1 = Object.keys(st).find((k) => st[k][0].n === 1)
    const k2 = Object.keys(st).find((k) => st[k][0].n === 2)
    return { B, M1, M2, k1, k2 }
  }

  test('case 15: empty key => server-generated unique key', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { B, k1, k2 } = await emptyKeySetup(h, roomName(15))
    const keys = Object.keys(B.channel.presenceState())
    assert.equal(keys.length, 2)
    for (const k of keys) {
      assert.equal(typeof k, 'string')
      assert.notEqual(k, '')
    }
    assert.ok(k1 && k2 && k1 !== k2, `distinct keys (${keys})`)
    if (!keys.every((k) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(k))) {
      t.diagnostic(`generated keys are not UUIDs (allowed, UUID preferred): ${keys}`)
    }
  })

  test('case 16: new key per rejoin (empty key)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { B, M1, k1, k2 } = await emptyKeySetup(h, roomName(16))
    const mark = B.log.length

    await disconnectClient(M1.client)
    await waitFor(() => presenceEvents(B.log.slice(mark), 'leave', k1).length, LOCAL_MS, 'leave for the old key')
    const joinsBefore = M1.client.wire.sent.filter((m) => m.event === 'phx_join').length
    M1.client.connect()
    await waitFor(
      () => M1.channel.state === 'joined' && M1.client.wire.sent.filter((m) => m.event === 'phx_join').length > joinsBefore,
      LOCAL_MS + 1000,
      'M1 rejoined after reconnect'
    )
    assert.equal(await M1.channel.track({ n: 1 }), 'ok')
    const join = await waitFor(
      () => presenceEvents(B.log.slice(mark), 'join').find((e) => e.newPresences.some((p) => p.n === 1)),
      LOCAL_MS,
      're-tracked presence appears'
    )
    assert.notEqual(join.key, k1, 'rejoin got a different key')
    assert.notEqual(join.key, k2)
    assert.notEqual(join.key, '')
    const idxLeave = B.log.indexOf(presenceEvents(B.log.slice(mark), 'leave', k1)[0])
    assert.ok(idxLeave < B.log.indexOf(join), 'leave for the old key came first')
  })

  test('case 31: reconnect re-sync', { timeout: DROP_WINDOW + TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(31)
    const B = await h.member(room, { key: 'b' })
    const A = await h.member(room, { key: 'a' })
    await trackAndSee(A, { s: 1 }, B, 'a')
    const jr1 = A.client.wire.sent.find((m) => m.event === 'phx_join').join_ref
    const recvMark = A.client.wire.recv.length
    const logMark = A.log.length

    // No server hook to kill the socket: reset the TCP connection from the client side
    // (RST, no close frame). realtime-js sees an unclean close and reconnects after ~1 s.
    const sock = tcpOf(A.client)
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy()
    else sock.destroy()

    await waitFor(() => A.client.wire.opens >= 2 && A.client.isConnected(), LOCAL_MS + 1500, 'A reconnected')
    const rejoin = await waitFor(
      () => A.client.wire.sent.find((m) => m.event === 'phx_join' && m.join_ref !== jr1),
      LOCAL_MS,
      'A rejoined'
    )
    const jr2 = rejoin.join_ref
    assert.equal(rejoin.ref, jr2, 'join frame has join_ref == ref')
    assert.notEqual(jr2, jr1, 'new join_ref')
    const state = await waitFor(
      () => A.client.wire.recv.slice(recvMark).find((m) => m.event === 'presence_state' && m.topic === A.topic),
      LOCAL_MS,
      'fresh presence_state'
    )
    assert.equal(state.join_ref, jr2, 'presence_state carries the new join_ref')
    await waitFor(() => A.channel.state === 'joined', LOCAL_MS, 'channel joined again')
    await waitFor(() => syncs(A.log.slice(logMark)).length, LOCAL_MS, 'sync after rejoin')

    // A's old presence is gone (server dropped it with the old connection) and not re-tracked
    await waitFor(() => presenceEvents(B.log, 'leave', 'a').length, DROP_WINDOW, 'B gets leave for the old a')
    await waitFor(() => A.channel.presenceState().a === undefined, DROP_WINDOW, 'A own state has no a')
    await sleep(300)
    assert.equal(B.channel.presenceState().a, undefined, 'no automatic re-track')
    assert.equal(A.channel.presenceState().a, undefined)

    // tracking again works on the new join
    const mark = B.log.length
    assert.equal(await A.channel.track({ s: 2 }), 'ok')
    await waitFor(() => presenceEvents(B.log.slice(mark), 'join', 'a').length, LOCAL_MS, 'B sees a again')
    assert.equal(B.channel.presenceState().a.length, 1)
    assert.equal(B.channel.presenceState().a[0].s, 2)
  })
})
