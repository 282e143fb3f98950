// Presence semantics seen through realtime-js: docs/realtime-spec.md §4, §9 cases 4–10.
// Each case builds its own room (A = key 'a', B = key 'b') so cases run concurrently.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { harness, roomName, waitFor, sleep, presenceEvents, syncs, LOCAL_MS, TEST_TIMEOUT } from './helpers.mjs'

/** A (key a) and B (key b), both with sync/join/leave listeners, subscribed and synced. */
async function pair(h, room, extra = {}) {
  const A = await h.member(room, { key: 'a', ...extra })
  const B = await h.member(room, { key: 'b', ...extra })
  await waitFor(() => syncs(A.log).length && syncs(B.log).length, LOCAL_MS, 'initial sync on A and B')
  return { A, B }
}

/** A tracks `meta`, expects 'ok', and waits until B's state shows exactly that meta for 'a'. */
async function trackSeen(A, B, meta) {
  assert.equal(await A.channel.track(meta), 'ok')
  await waitFor(
    () => B.channel.presenceState().a?.length === 1 && Object.entries(meta).every(([k, v]) => B.channel.presenceState().a[0][k] === v),
    LOCAL_MS,
    `B sees a=${JSON.stringify(meta)}`
  )
  return B.channel.presenceState().a[0].presence_ref
}

function assertMeta(meta, expected, what) {
  assert.equal(typeof meta.presence_ref, 'string', `${what}: presence_ref is a string`)
  assert.ok(meta.presence_ref.length > 0, `${what}: presence_ref non-empty`)
  assert.ok(!('phx_ref' in meta) && !('phx_ref_prev' in meta), `${what}: no phx_ref/phx_ref_prev`)
  assert.deepEqual({ ...meta, presence_ref: undefined }, { ...expected, presence_ref: undefined }, `${what}: meta = user payload + presence_ref only`)
}

const after = (log, mark) => log.slice(mark).filter((e) => e.kind === 'presence')

describe('presence', { concurrency: true }, () => {
  test('case 4: presence enabled by listener', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(4)
    const A = await h.member(room, { presence: true })
    const join = A.client.wire.sent.find((m) => m.event === 'phx_join' && m.topic === A.topic)
    assert.ok(join, 'phx_join was sent')
    assert.equal(join.payload.config.presence.enabled, true)

    await waitFor(() => syncs(A.log).length, LOCAL_MS, 'first sync')
    await sleep(500)
    assert.equal(syncs(A.log).length, 1, 'exactly one sync')
    const subIdx = A.log.findIndex((e) => e.kind === 'status' && e.status === 'SUBSCRIBED')
    const syncIdx = A.log.findIndex((e) => e.kind === 'presence' && e.event === 'sync')
    assert.ok(subIdx >= 0 && subIdx < syncIdx, 'sync fires after SUBSCRIBED (presence_state follows the join reply)')
    assert.deepEqual(A.channel.presenceState(), {})

    const states = A.client.wire.recv.filter((m) => m.event === 'presence_state' && m.topic === A.topic)
    assert.equal(states.length, 1, 'one presence_state')
    assert.equal(states[0].join_ref, join.join_ref, 'presence_state carries the join_ref')
    assert.equal(states[0].ref, null)
    assert.deepEqual(states[0].payload, {})
  })

  test('case 5: basic track visibility', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { A, B } = await pair(h, roomName(5))
    const mark = B.log.length
    assert.equal(await A.channel.track({ status: 'online' }), 'ok')

    const join = await waitFor(() => presenceEvents(B.log.slice(mark), 'join', 'a')[0], LOCAL_MS, 'B gets join for a')
    assert.deepEqual(join.currentPresences, [])
    assert.equal(join.newPresences.length, 1)
    assertMeta(join.newPresences[0], { status: 'online' }, 'join.newPresences[0]')
    await waitFor(() => B.log.indexOf(join) < B.log.findLastIndex((e) => e.event === 'sync'), LOCAL_MS, 'sync after join')

    const st = B.channel.presenceState()
    assert.equal(st.a.length, 1)
    assertMeta(st.a[0], { status: 'online' }, 'presenceState().a[0]')
    assert.equal(st.a[0].presence_ref, join.newPresences[0].presence_ref)
    assert.equal(st.b, undefined, 'B did not track, so no b key')

    // wire shape of the diff
    const diff = B.client.wire.recv.find((m) => m.event === 'presence_diff' && m.payload.joins?.a)
    assert.ok(diff, 'presence_diff received')
    assert.equal(diff.join_ref, null)
    assert.equal(diff.ref, null)
    assert.deepEqual(diff.payload.leaves, {})
    assert.deepEqual(Object.keys(diff.payload.joins), ['a'])
    assert.equal(diff.payload.joins.a.metas.length, 1)
    assert.equal(diff.payload.joins.a.metas[0].status, 'online')
    assert.equal(typeof diff.payload.joins.a.metas[0].phx_ref, 'string')
  })

  test('case 6: self-visibility', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { A, B } = await pair(h, roomName(6))
    const mark = A.log.length
    assert.equal(await A.channel.track({ status: 'online' }), 'ok')
    const join = await waitFor(() => presenceEvents(A.log.slice(mark), 'join', 'a')[0], LOCAL_MS, 'A gets its own join')
    assertMeta(join.newPresences[0], { status: 'online' }, 'own join')
    await waitFor(() => A.channel.presenceState().a?.length === 1, LOCAL_MS, 'A.presenceState().a')
    await waitFor(() => B.channel.presenceState().a?.length === 1, LOCAL_MS, 'B.presenceState().a')
    assert.equal(A.channel.presenceState().a[0].presence_ref, B.channel.presenceState().a[0].presence_ref)
  })

  test('case 7: late joiner gets state', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(7)
    const { A, B } = await pair(h, room)
    const refB = await trackSeen(A, B, { status: 'online' })

    const C = await h.member(room, { key: 'c' })
    const firstSync = await waitFor(() => syncs(C.log)[0], LOCAL_MS, 'C first sync')
    assert.equal(firstSync.state.a?.length, 1, 'first sync already shows a')
    assertMeta(firstSync.state.a[0], { status: 'online' }, 'C state a')
    assert.equal(firstSync.state.a[0].presence_ref, refB, 'same presence_ref as B sees')
    const join = presenceEvents(C.log, 'join', 'a')[0]
    assert.ok(join, 'C got a join for a from the initial state')
    assert.ok(C.log.indexOf(join) < C.log.indexOf(firstSync), 'join before the first sync')
    assert.deepEqual(join.currentPresences, [])
    assert.equal(join.newPresences[0].presence_ref, refB)

    const state = C.client.wire.recv.find((m) => m.event === 'presence_state')
    assert.equal(state.payload.a.metas.length, 1)
    assert.equal(state.payload.a.metas[0].phx_ref, refB)
  })

  test('case 8: update', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { A, B } = await pair(h, roomName(8))
    const ref1 = await trackSeen(A, B, { status: 'online' })
    await sleep(100)
    const mark = B.log.length

    assert.equal(await A.channel.track({ status: 'away' }), 'ok')
    await waitFor(() => after(B.log, mark).some((e) => e.event === 'sync'), LOCAL_MS, 'B sync after update')
    await sleep(500)
    const evs = after(B.log, mark)
    assert.deepEqual(evs.map((e) => `${e.event}:${e.key ?? ''}`), ['join:a', 'leave:a', 'sync:'], 'one diff: join, leave, then one sync')
    const [join, leave] = evs
    assert.equal(join.newPresences.length, 1)
    assertMeta(join.newPresences[0], { status: 'away' }, 'update join')
    const ref2 = join.newPresences[0].presence_ref
    assert.notEqual(ref2, ref1, 'update gets a new presence_ref')
    assert.deepEqual(join.currentPresences, [{ status: 'online', presence_ref: ref1 }])
    assert.deepEqual(leave.leftPresences, [{ status: 'online', presence_ref: ref1 }])
    assert.deepEqual(leave.currentPresences, [{ status: 'away', presence_ref: ref2 }])

    const st = B.channel.presenceState()
    assert.deepEqual(st.a, [{ status: 'away', presence_ref: ref2 }])

    // wire: a single presence_diff carrying both the join and the leave
    const diffs = B.client.wire.recv.filter((m) => m.event === 'presence_diff' && (m.payload.joins?.a || m.payload.leaves?.a))
    const upd = diffs.find((d) => d.payload.leaves?.a)
    assert.ok(upd?.payload.joins?.a, 'the leave of the old meta comes in the same diff as the join of the new one')
    assert.equal(upd.payload.joins.a.metas[0].phx_ref, ref2)
    assert.equal(upd.payload.leaves.a.metas[0].phx_ref, ref1)
  })

  test('case 9: idempotent re-track', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { A, B } = await pair(h, roomName(9))
    const ref = await trackSeen(A, B, { status: 'away' })
    await sleep(200)
    const mark = B.log.length
    const diffsBefore = B.client.wire.recv.filter((m) => m.event === 'presence_diff').length

    assert.equal(await A.channel.track({ status: 'away' }), 'ok')
    await sleep(1000)
    assert.deepEqual(after(B.log, mark), [], 'no join, leave or sync for an identical re-track')
    assert.equal(B.client.wire.recv.filter((m) => m.event === 'presence_diff').length, diffsBefore, 'no presence_diff')
    assert.deepEqual(B.channel.presenceState().a, [{ status: 'away', presence_ref: ref }])
  })

  test('case 10: untrack', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const { A, B } = await pair(h, roomName(10))
    const ref = await trackSeen(A, B, { status: 'away' })
    await sleep(100)
    const mark = B.log.length

    assert.equal(await A.channel.untrack(), 'ok')
    const leave = await waitFor(() => presenceEvents(B.log.slice(mark), 'leave', 'a')[0], LOCAL_MS, 'B gets leave for a')
    assert.deepEqual(leave.leftPresences, [{ status: 'away', presence_ref: ref }])
    assert.deepEqual(leave.currentPresences, [])
    await waitFor(() => B.log.indexOf(leave) < B.log.findLastIndex((e) => e.event === 'sync'), LOCAL_MS, 'sync after leave')
    assert.equal(B.channel.presenceState().a, undefined)
    await waitFor(() => A.channel.presenceState().a === undefined, LOCAL_MS, 'A sees its own leave')
    assert.equal(A.channel.state, 'joined', 'A stays subscribed')
    // no spurious join after the leave
    await sleep(300)
    assert.equal(presenceEvents(B.log.slice(mark), 'join').length, 0)
  })
})
