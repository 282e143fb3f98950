// The example against a real Rollcall (../../clients/test-server.mjs): two supabase-js clients
// pointed at Rollcall see each other; a token handed over with setAuth reaches the server on
// the open socket (no reconnect); leaving removes the member.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { startRollcall } from '../../clients/test-server.mjs'
import { createRollcallClient, joinRoom } from './rollcall.js'

/** A `ws` WebSocket that counts sockets and records sent text frames. */
function counting() {
  const record = { opened: 0, sent: [] }
  class Counting extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols)
      record.opened++
      const send = this.send.bind(this)
      this.send = (data, ...rest) => {
        if (typeof data === 'string') record.sent.push(data)
        return send(data, ...rest)
      }
    }
  }
  return { record, Counting }
}

const until = async (what, fn, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test('two supabase-js clients on Rollcall see each other; setAuth does not reconnect', { timeout: 60_000 }, async (t) => {
  const server = await startRollcall()
  t.after(() => server.stop())
  const room = `sbjs-${process.pid}-${Date.now()}`
  const a = counting()
  const b = counting()
  const alice = createRollcallClient(server.url, 'any', { realtime: { transport: a.Counting } })
  const bob = createRollcallClient(server.url, 'any', { realtime: { transport: b.Counting } })
  let seenByAlice = []
  await joinRoom(alice, room, 'alice', { name: 'Alice' }, (m) => { seenByAlice = m })
  const leaveBob = await joinRoom(bob, room, 'bob', { name: 'Bob' }, () => {})
  await until('alice to see bob', () => seenByAlice.map((m) => m.key).join() === 'alice,bob')
  assert.equal(seenByAlice[1].metas[0].name, 'Bob')

  // A session arriving from the main client: the token goes out on the open socket.
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const jwt = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'bob', exp: Math.floor(Date.now() / 1000) + 3600 })}.sig`
  await bob.realtime.setAuth(jwt)
  await until('the access_token push', () => b.record.sent.some((f) => f.includes('access_token') && f.includes(jwt)))
  assert.equal(b.record.opened, 1)

  await leaveBob()
  await until('bob to leave', () => seenByAlice.map((m) => m.key).join() === 'alice')
  alice.realtime.disconnect()
  bob.realtime.disconnect()
})
