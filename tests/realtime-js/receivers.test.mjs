// Presence-enabled vs presence-disabled members: docs/realtime-spec.md §4.3, §4.4, §4.6, §9 cases 17–19.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { harness, roomName, waitFor, sleep, presenceEvents, spyPresenceTriggers, subscribe, LOCAL_MS, TEST_TIMEOUT } from './helpers.mjs'

describe('presence receivers', { concurrency: true }, () => {
  test('case 17: presence disabled receiver (+ raw variant)', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(17)
    const topic = `realtime:${room}`
    const B = await h.member(room, { key: 'b' }) // observer with listeners: tells us when the diff went out

    // D: no presence listener, default config
    const D = await h.member(room, { presence: false, subscribe: false })
    const fired = spyPresenceTriggers(D.channel)
    await subscribe(D.channel)
    const djoin = D.client.wire.sent.find((m) => m.event === 'phx_join')
    assert.equal(djoin.payload.config.presence.enabled, false)

    // raw D: presence.enabled false
    const r = await h.raw()
    const { reply } = await r.join(topic, { presence: { key: '', enabled: false } })
    assert.equal(reply[4].status, 'ok')

    const A = await h.member(room, { key: 'a' })
    assert.equal(await A.channel.track({ status: 'online' }), 'ok')
    await waitFor(() => B.channel.presenceState().a?.length === 1, LOCAL_MS, 'observer sees a')

    // raw D still receives the public presence_diff
    const diff = await r.waitFrame((f) => Array.isArray(f) && f[2] === topic && f[3] === 'presence_diff' && f[4]?.joins?.a, LOCAL_MS, 'presence_diff with joins.a')
    assert.equal(diff[0], null)
    assert.equal(diff[1], null)
    assert.deepEqual(diff[4].leaves, {})
    assert.equal(diff[4].joins.a.metas[0].status, 'online')

    await sleep(500)
    assert.deepEqual(r.framesFor(topic, 'presence_state'), [], 'raw D never gets presence_state')
    assert.deepEqual(D.channel.presenceState(), {})
    assert.deepEqual(fired, [], 'no presence callbacks fire on D')
    assert.equal(D.client.wire.recv.filter((m) => m.event === 'presence_state').length, 0)
    assert.ok(D.client.wire.recv.some((m) => m.event === 'presence_diff'), 'library D also received the diff (buffered, not applied)')
  })

  test('case 18: enabled flag without listener', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(18)
    const E = await h.member(room, { presence: false, config: { presence: { enabled: true } } })
    const ejoin = E.client.wire.sent.find((m) => m.event === 'phx_join')
    assert.equal(ejoin.payload.config.presence.enabled, true)
    const A = await h.member(room, { key: 'a' })
    assert.equal(await A.channel.track({ status: 'online' }), 'ok')
    await waitFor(() => E.channel.presenceState().a?.length === 1, LOCAL_MS, 'E.presenceState().a has length 1')
    assert.equal(E.channel.presenceState().a[0].status, 'online')
  })

  test('case 19: track from a presence-disabled client is visible', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = harness(t)
    const room = roomName(19)
    const B = await h.member(room, { key: 'b' })
    const D = await h.member(room, { presence: false })
    assert.equal(await D.channel.track({ x: 1 }), 'ok')
    const join = await waitFor(
      () => presenceEvents(B.log, 'join').find((e) => e.newPresences.some((p) => p.x === 1)),
      LOCAL_MS,
      'B gets join with x:1'
    )
    assert.equal(typeof join.key, 'string')
    assert.notEqual(join.key, '', 'server-generated key')
    assert.notEqual(join.key, 'b')
    assert.deepEqual(join.currentPresences, [])
    assert.equal(join.newPresences.length, 1)
  })
})
