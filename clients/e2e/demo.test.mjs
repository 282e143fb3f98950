// The server's demo page (GET /) in headless Debian Chromium driven by playwright-core: two
// people join one room and see each other online; one closes the page; the other sees them
// go offline within the server's timeout (heartbeat × missed beats). A screenshot goes to
// test-output/ at the repository root.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { startRollcall } from '../test-server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const outDir = process.env.ROLLCALL_TEST_OUTPUT || path.resolve(here, '../../test-output')
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

test('two pages see each other; a closed page goes offline for the other', { timeout: 90_000 }, async (t) => {
  assert.ok(existsSync(executablePath), `no Chromium at ${executablePath}: apt-get install -y chromium`)
  const server = await startRollcall({ heartbeatMs: 1000, missed: 3 })
  t.after(() => server.stop())
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  })
  t.after(() => browser.close())
  const room = `e2e-${process.pid}-${Date.now()}`
  const open = async (name) => {
    const context = await browser.newContext({ viewport: { width: 800, height: 500 } })
    const page = await context.newPage()
    await page.goto(`${server.url}/?name=${name}&room=${room}&heartbeat_ms=${server.heartbeatMs / 2}`)
    return { context, page }
  }
  const alice = await open('alice')
  const bob = await open('bob')
  const row = (page, key, status) => page.locator(`li[data-key="${key}"][data-status="${status}"]`)

  await row(alice.page, 'bob', 'online').waitFor({ timeout: 10_000 })
  await row(bob.page, 'alice', 'online').waitFor({ timeout: 10_000 })
  await row(alice.page, 'alice', 'online').waitFor({ timeout: 10_000 })

  const closedAt = Date.now()
  await bob.context.close()
  const limit = server.heartbeatMs * server.missed + 2000
  await row(alice.page, 'bob', 'offline').waitFor({ timeout: limit })
  const took = Date.now() - closedAt
  assert.ok(took <= limit, `bob went offline after ${took} ms (limit ${limit})`)
  await row(alice.page, 'alice', 'online').waitFor({ timeout: 1000 })

  mkdirSync(outDir, { recursive: true })
  const shot = path.join(outDir, 'demo-e2e.png')
  await alice.page.screenshot({ path: shot, fullPage: true })
  console.log(`bob offline after ${took} ms; screenshot: ${shot}`)
})
