// The hooks with the real, pinned @supabase/realtime-js against a real Rollcall server (started
// in global-setup.ts): no mock socket. jsdom provides document/window events; `ws` the socket.
import { afterEach, describe, expect, inject, test, vi } from 'vitest'
import { act, cleanup, renderHook, waitFor } from '@testing-library/react'
import WebSocket from 'ws'
import {
  createRealtimeClient,
  DEFAULT_HEARTBEAT_MS,
  endpointOf,
  useChildrenPresence,
  usePresence,
  type ChildStatus,
  type RollcallConfig,
} from '../src'

const server = inject('rollcall')
let roomSeq = 0
const config = (room: string): RollcallConfig => ({
  url: server.url,
  apikey: 'test',
  room,
  transport: WebSocket as never,
})
const freshRoom = () => `hooks-${process.pid}-${Date.now()}-${roomSeq++}`

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

describe('usePresence + useChildrenPresence', () => {
  test('a child goes online, idle when hidden, online again, offline on unmount; one callback per change', async () => {
    const cfg = config(freshRoom())
    const changes: Array<[string, ChildStatus, ChildStatus]> = []
    let renders = 0
    const parent = renderHook(() => {
      renders++
      return useChildrenPresence({
        childIds: ['kid-1', 'kid-2'],
        onStatusChange: (id, s, prev) => changes.push([id, s, prev]),
        config: cfg,
      })
    })
    await waitFor(() => expect(parent.result.current.connected).toBe(true))
    await waitFor(() => expect(parent.result.current.statuses['kid-1']).toBe('offline'))
    expect(changes).toEqual([]) // the baseline fires nothing

    const child = renderHook(() =>
      usePresence({ userId: 'kid-1', userType: 'child', name: 'Kid One', config: cfg }),
    )
    await waitFor(() => expect(child.result.current.status).toBe('online'))
    await waitFor(() => expect(parent.result.current.isChildOnline('kid-1')).toBe(true))
    expect(parent.result.current.isChildOnline('kid-2')).toBe(false)
    expect(changes).toEqual([['kid-1', 'online', 'offline']])

    act(() => setHidden(true))
    await waitFor(() => expect(parent.result.current.statusOf('kid-1')).toBe('idle'))
    expect(parent.result.current.isChildOnline('kid-1')).toBe(true)
    act(() => setHidden(false))
    await waitFor(() => expect(parent.result.current.statusOf('kid-1')).toBe('online'))

    const rendersBefore = renders
    await new Promise((r) => setTimeout(r, 500))
    expect(renders).toBe(rendersBefore) // nothing changed, nothing rendered

    child.unmount()
    await waitFor(() => expect(parent.result.current.isChildOnline('kid-1')).toBe(false))
    expect(changes).toEqual([
      ['kid-1', 'online', 'offline'],
      ['kid-1', 'idle', 'online'],
      ['kid-1', 'online', 'idle'],
      ['kid-1', 'offline', 'online'],
    ])
  })

  test('a second device of an online child changes nothing; offline only when the last one goes', async () => {
    const cfg = config(freshRoom())
    const onStatusChange = vi.fn()
    const parent = renderHook(() => useChildrenPresence({ childIds: ['kid-2'], onStatusChange, config: cfg }))
    await waitFor(() => expect(parent.result.current.connected).toBe(true))
    const phone = renderHook(() => usePresence({ userId: 'kid-2', name: 'phone', config: cfg }))
    await waitFor(() => expect(parent.result.current.isChildOnline('kid-2')).toBe(true))
    const tablet = renderHook(() => usePresence({ userId: 'kid-2', name: 'tablet', config: cfg }))
    await waitFor(() => expect(tablet.result.current.status).toBe('online'))
    phone.unmount()
    await new Promise((r) => setTimeout(r, 700))
    expect(onStatusChange.mock.calls).toEqual([['kid-2', 'online', 'offline']])
    tablet.unmount()
    await waitFor(() => expect(parent.result.current.isChildOnline('kid-2')).toBe(false))
    expect(onStatusChange.mock.calls).toEqual([
      ['kid-2', 'online', 'offline'],
      ['kid-2', 'offline', 'online'],
    ])
  })

  test('pagehide drops the presence at once, pageshow brings it back; a disabled hook never connects', async () => {
    // realtime-js itself disconnects every socket of the window on pagehide (the watching hook's
    // too), so the server's status API is the observer here.
    const cfg = config(freshRoom())
    const child = renderHook(() => usePresence({ userId: 'kid-3', config: cfg }))
    const disabled = renderHook(() => usePresence({ userId: 'kid-4', enabled: false, config: cfg }))
    await waitFor(() => expect(child.result.current.status).toBe('online'))
    await waitFor(async () => expect(await serverStatus('kid-3')).toBe(true))
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
  })
})
