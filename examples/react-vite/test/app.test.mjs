// The built Vite app (dist/, on the packed @rollcall/react) in headless Debian Chromium, driven
// by playwright-core, against a real Rollcall (../../clients/test-server.mjs) with a 2 s
// offline grace: a parent page watches a child; the child's page reloads (no offline → online
// flap reaches the parent) and is then closed (offline after the grace, with last seen).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { startRollcall } from '../../../clients/test-server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const dist = path.resolve(here, '../dist')
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }

/** Serves dist/ (index.html for unknown paths) on a free loopback port. */
function serveDist() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x')
    let file = path.join(dist, path.normalize(url.pathname))
    if (!file.startsWith(dist) || !existsSync(file) || url.pathname === '/') file = path.join(dist, 'index.html')
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' })
    res.end(readFileSync(file))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/** The server's view of `key` (POST /api/presence/status). */
async function serverStatus(url, key) {
  const r = await fetch(`${url}/api/presence/status`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ keys: [key] }),
  })
  return (await r.json()).statuses[key] ?? { connections: 0 }
}

test('a reload does not flap; a closed tab goes offline after the grace', { timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(path.join(dist, 'index.html')), 'run `npm run build` first')
  assert.ok(existsSync(executablePath), `no Chromium at ${executablePath}: apt-get install -y chromium`)
  const rollcall = await startRollcall({ heartbeatMs: 1000, missed: 3, offlineGraceMs: 2000 })
  t.after(() => rollcall.stop())
  const web = await serveDist()
  t.after(() => web.close())
  const app = `http://127.0.0.1:${web.address().port}`
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  })
  t.after(() => browser.close())

  const room = `vite-${process.pid}-${Date.now()}`
  const kid = `kid-${process.pid}`
  const open = async (query) => {
    const context = await browser.newContext()
    const page = await context.newPage()
    page.on('pageerror', (e) => console.error('page error:', e))
    await page.goto(`${app}/?url=${encodeURIComponent(rollcall.url)}&room=${room}&${query}`)
    return { context, page }
  }
  const parent = await open(`watch=${kid}`)
  const child = (status) => parent.page.locator(`#children li[data-key="${kid}"][data-status="${status}"]`)
  await parent.page.locator('#children').waitFor()
  await child('offline').waitFor({ timeout: 10_000 })

  const kidTab = await open(`user=${kid}&name=Kid`)
  await kidTab.page.locator('#me[data-status="online"]').waitFor({ timeout: 10_000 })
  await child('online').waitFor({ timeout: 10_000 })
  await parent.page.locator(`#members li[data-key="${kid}"]`).waitFor({ timeout: 10_000 })

  // A reload: the page unloads (its socket closes), and loads again within the grace. The
  // server is asked until the presence is really gone (0 connections), and the page stays away
  // 300 ms more (three of the server's 100 ms timer ticks), so the gap is one only the grace
  // bridges: with a 0 ms grace this test sees offline->online in the log and fails. (A plain
  // reload on this machine is faster than a tick and would prove nothing.)
  const appUrl = kidTab.page.url()
  await kidTab.page.goto('about:blank')
  while ((await serverStatus(rollcall.url, kid)).connections > 0) await new Promise((r) => setTimeout(r, 20))
  await new Promise((r) => setTimeout(r, 300))
  await kidTab.page.goto(appUrl)
  await kidTab.page.locator('#me[data-status="online"]').waitFor({ timeout: 10_000 })

  const closedAt = Date.now()
  await kidTab.context.close()
  const limit = rollcall.offlineGraceMs + rollcall.heartbeatMs * rollcall.missed + 5000
  await child('offline').waitFor({ timeout: limit })
  const took = Date.now() - closedAt
  assert.ok(took >= rollcall.offlineGraceMs - 100, `offline after ${took} ms, before the ${rollcall.offlineGraceMs} ms grace`)
  assert.match(await child('offline').innerText(), /last seen/)
  // Status changes are delivered in order: a flap during the reload would sit between these two.
  const log = await parent.page.locator('#log li').allInnerTexts()
  assert.deepEqual(log, [`${kid} offline->online`, `${kid} online->offline`])
  console.log(`closed tab offline after ${took} ms (grace ${rollcall.offlineGraceMs} ms); log: ${log.join(', ')}`)
})
