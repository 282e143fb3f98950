// The hooks with the real, pinned @supabase/realtime-js against a real Rollcall server (started
// in global-setup.ts): no mock socket. jsdom provides document/window events; `ws` the socket
// (wrapped to count connections and record what the client sent).
import { afterEach, describe, expect, inject, test, vi } from 'vitest'
import { act, cleanup, renderHook, waitFor } from '@testing-library/react'
import { createElement, StrictMode, type ReactNode } from 'react'
import WebSocket from 'ws'
import {
  createRealtimeClient,
  DEFAULT_HEARTBEAT_MS,
  endpointOf,
  RollcallProvider,
  useChildrenPresence,
  useMyPresence,
  usePresence,
  usePresenceList,
  type ChildStatus,
  type RollcallConfig,
} from '../src/index.js'

const server = inject('rollcall')
let seq = 0
const fresh = (what: string) => `${what}-${process.pid}-${Date.now()}-${seq++}`

/** A `ws` WebSocket that counts opened sockets and records sent text frames. */
function countingTransport() {
  const record = { opened: 0, sent: [] as string[] }
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      record.opened++
      const send = this.send.bind(this)
      this.send = ((data: unknown, ...rest: unknown[]) => {
        if (typeof data === 'string') record.sent.push(data)
        return (send as (...a: unknown[]) => void)(data, ...rest)
      }) as typeof this.send
    }
  }
  return { record, transport: Counting as never }
}

function wrapper(props: { config: RollcallConfig; room: string; accessToken?: () => string | undefined; strict?: boolean }) {
  return ({ children }: { children?: ReactNode }) => {
    const provider = createElement(
      RollcallProvider,
      { config: props.config, room: props.room, accessToken: props.accessToken?.() },
      children,
    )
    return props.strict ? createElement(StrictMode, null, provider) : provider
  }
}

const configWith = (transport: never): RollcallConfig => ({ url: server.url, apikey: 'test', transport })

/** Whether the server holds a live presence for `key` (POST /api/presence/status). */
async function serverStatus(key: string): Promise<boolean> {
  const r = await fetch(`${server.url}/api/presence/status`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ keys: [key] }),
  })
  const body = (await r.json()) as { statuses: Record<string, { connections?: number }> }
  return (body.statuses[key]?.connections ?? 0) > 0
}

function setHidden(hidden: boolean) {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') })
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden })
  document.dispatchEvent(new Event('visibilitychange'))
}

/** A JWT-shaped token (unsigned; the open-mode server ignores it) that expires in an hour. */
function token(sub: string): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}.sig`
}

afterEach(() => {
  cleanup()
  setHidden(false)
})

describe('client setup', () => {
  test('heartbeats every 60 s by default and builds the realtime-js endpoint', () => {
    const client = createRealtimeClient({ url: 'http://h:1', apikey: 'k', transport: WebSocket as never })
    expect(client.heartbeatIntervalMs).toBe(DEFAULT_HEARTBEAT_MS)
    expect(DEFAULT_HEARTBEAT_MS).toBe(60_000)
    expect(endpointOf('https://x.supabase.co/realtime/v1/')).toBe('wss://x.supabase.co/realtime/v1')
    expect(endpointOf('http://127.0.0.1:4000')).toBe('ws://127.0.0.1:4000/realtime/v1')
  })
})

describe('one socket per provider', () => {
  test('presence, list and own meta share one socket; name and token changes neither reconnect nor leave', async () => {
    const room = fresh('room')
    const me = countingTransport()
    const watcher = countingTransport()
    let name = 'Kid One'
    let jwt: string | undefined = token('kid-1')
    const child = renderHook(
      () => ({
        presence: usePresence({ userId: 'kid-1', name }),
        list: usePresenceList({ includeSelf: true }),
        mine: useMyPresence<{ cursor: number }>(),
      }),
      { wrapper: wrapper({ config: configWith(me.transport), room, accessToken: () => jwt, strict: true }) },
    )
    // A second provider (another person's page) records every list it renders.
    const seen: string[][] = []
    const other = renderHook(
      () => {
        const list = usePresenceList()
        seen.push(list.map((m) => `${m.key}:${String(m.metas[0]?.name)}:${String(m.metas[0]?.cursor)}`))
        return list
      },
      { wrapper: wrapper({ config: configWith(watcher.transport), room }) },
    )
    await waitFor(() => expect(child.result.current.presence.status).toBe('online'))
    await waitFor(() => expect(other.result.current.map((m) => m.metas[0]?.name)).toEqual(['Kid One']))
    expect(child.result.current.list.map((m) => m.key)).toEqual(['kid-1'])

    act(() => child.result.current.mine[1]({ cursor: 7 }))
    await waitFor(() => expect(other.result.current[0]?.metas[0]?.cursor).toBe(7))
    expect(child.result.current.mine[0]).toEqual({ cursor: 7 })

    name = 'Kid Renamed'
    child.rerender()
    await waitFor(() => expect(other.result.current[0]?.metas[0]?.name).toBe('Kid Renamed'))
    expect(other.result.current[0].metas).toHaveLength(1)

    const framesBefore = me.record.sent.length
    jwt = token('kid-1-refreshed')
    child.rerender()
    await waitFor(() =>
      expect(me.record.sent.slice(framesBefore).some((f) => f.includes('access_token') && f.includes(jwt!))).toBe(true),
    )
    expect(me.record.opened).toBe(1) // StrictMode double mount, three hooks, a token refresh: one socket
    expect(watcher.record.opened).toBe(1)
    // kid-1 never left the other page's list after it first appeared.
    const first = seen.findIndex((l) => l.length > 0)
    expect(seen.slice(first).every((l) => l.length === 1 && l[0].startsWith('kid-1:'))).toBe(true)

    child.unmount()
    await waitFor(() => expect(other.result.current).toEqual([]))
  })

  test('hidden page: idle in the meta; pagehide drops the presence at once, pageshow brings it back', async () => {
    const room = fresh('room')
    const t = countingTransport()
    const o = countingTransport()
    const child = renderHook(() => usePresence({ userId: 'kid-3' }), { wrapper: wrapper({ config: configWith(t.transport), room }) })
    const disabled = renderHook(() => usePresence({ userId: 'kid-4', enabled: false }), {
      wrapper: wrapper({ config: configWith(o.transport), room }),
    })
    await waitFor(() => expect(child.result.current.status).toBe('online'))
    await waitFor(async () => expect(await serverStatus('kid-3')).toBe(true))
    act(() => setHidden(true))
    await waitFor(() => expect(child.result.current.status).toBe('idle'))
    act(() => setHidden(false))
    await waitFor(() => expect(child.result.current.status).toBe('online'))
    expect(disabled.result.current.status).toBe('offline')
    act(() => {
      window.dispatchEvent(new Event('pagehide'))
    })
    expect(child.result.current.status).toBe('offline')
    await waitFor(async () => expect(await serverStatus('kid-3')).toBe(false), { timeout: 5000 })
    act(() => {
      window.dispatchEvent(new Event('pageshow'))
    })
    await waitFor(() => expect(child.result.current.status).toBe('online'), { timeout: 5000 })
    await waitFor(async () => expect(await serverStatus('kid-3')).toBe(true), { timeout: 5000 })
    expect(await serverStatus('kid-4')).toBe(false)
    expect(o.record.opened).toBe(0) // a disabled hook never connects
  })
})

describe('useChildrenPresence (the server status watch)', () => {
  test('baseline, online, a second device changes nothing, offline after the grace, with last seen', async () => {
    const room = fresh('room')
    const kid = fresh('kid')
    const parentT = countingTransport()
    const changes: Array<[string, ChildStatus, ChildStatus]> = []
    let renders = 0
    const parent = renderHook(
      () => {
        renders++
        return useChildrenPresence({ childIds: [kid, 'nobody'], onStatusChange: (id, s, prev) => changes.push([id, s, prev]) })
      },
      { wrapper: wrapper({ config: configWith(parentT.transport), room }) },
    )
    await waitFor(() => expect(parent.result.current.connected).toBe(true))
    await waitFor(() => expect(parent.result.current.statuses[kid]?.status).toBe('offline'))
    expect(parent.result.current.lastSeen(kid)).toBeNull()
    expect(changes).toEqual([]) // the baseline fires nothing

    const phone = renderHook(() => usePresence({ userId: kid, name: 'phone' }), {
      wrapper: wrapper({ config: configWith(countingTransport().transport), room }),
    })
    await waitFor(() => expect(parent.result.current.isChildOnline(kid)).toBe(true))
    const tablet = renderHook(() => usePresence({ userId: kid, name: 'tablet' }), {
      wrapper: wrapper({ config: configWith(countingTransport().transport), room }),
    })
    await waitFor(() => expect(tablet.result.current.status).toBe('online'))
    phone.unmount()
    const rendersBefore = renders
    tablet.unmount()
    await waitFor(() => expect(parent.result.current.statusOf(kid)).toBe('offline'), { timeout: server.offlineGraceMs + 5000 })
    expect(renders - rendersBefore).toBeLessThanOrEqual(2) // one status (plus last seen) change
    expect(parent.result.current.lastSeen(kid)).toBeGreaterThan(0)
    expect(changes).toEqual([
      [kid, 'online', 'offline'],
      [kid, 'offline', 'online'],
    ])
    expect(parentT.record.opened).toBe(1)
  })

  test('a reload within the grace does not flap', async () => {
    const room = fresh('room')
    const kid = fresh('kid')
    const onStatusChange = vi.fn()
    const parent = renderHook(() => useChildrenPresence({ childIds: [kid], onStatusChange }), {
      wrapper: wrapper({ config: configWith(countingTransport().transport), room }),
    })
    await waitFor(() => expect(parent.result.current.connected).toBe(true))
    const page = () =>
      renderHook(() => usePresence({ userId: kid }), {
        wrapper: wrapper({ config: configWith(countingTransport().transport), room }),
      })
    const first = page()
    await waitFor(() => expect(parent.result.current.isChildOnline(kid)).toBe(true))
    first.unmount() // the page unloads ...
    const second = page() // ... and loads again
    await waitFor(() => expect(second.result.current.status).toBe('online'))
    await waitFor(async () => expect(await serverStatus(kid)).toBe(true))
    second.unmount()
    await waitFor(() => expect(parent.result.current.statusOf(kid)).toBe('offline'), { timeout: server.offlineGraceMs + 5000 })
    expect(onStatusChange.mock.calls).toEqual([
      [kid, 'online', 'offline'],
      [kid, 'offline', 'online'],
    ])
  })
})
