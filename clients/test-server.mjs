// Starts a real Rollcall server for the Node test suites (clients/react, clients/e2e).
//
// * ROLLCALL_URL set (the Rust tests crates/rollcall-client/tests/{react_hooks,browser_e2e}.rs
//   start an in-process server and pass its URL, heartbeat and missed-beat count): use it.
// * Otherwise spawn the `rollcall` binary on a free port: ROLLCALL_BIN if set, else
//   `cargo build -p rollcall-server` (so it is never stale) into CARGO_TARGET_DIR, defaulting
//   to ../../target-client next to the checkout, and run target/debug/rollcall. If cargo is
//   missing, an already built binary there is used.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..')

function locateBinary() {
  if (process.env.ROLLCALL_BIN) return process.env.ROLLCALL_BIN
  const targetDir = process.env.CARGO_TARGET_DIR || path.resolve(repo, '../target-client')
  const bin = path.join(targetDir, 'debug', 'rollcall')
  const build = spawnSync('cargo', ['build', '-q', '-p', 'rollcall-server'], {
    cwd: repo,
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  if (build.error && !existsSync(bin)) {
    throw new Error(`cannot build rollcall (${build.error.message}); set ROLLCALL_BIN`)
  }
  if (!build.error && build.status !== 0) throw new Error('cargo build -p rollcall-server failed')
  if (!existsSync(bin)) throw new Error(`no rollcall binary at ${bin}; set ROLLCALL_BIN`)
  return bin
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function waitReady(url, child, ms) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`rollcall exited with ${child.exitCode}`)
    try {
      const r = await fetch(url + '/')
      if (r.ok) return
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`rollcall did not answer on ${url} within ${ms} ms`)
}

/**
 * A running server: { url, heartbeatMs, missed, offlineGraceMs, stop() }.
 * @param {{heartbeatMs?: number, missed?: number, offlineGraceMs?: number}} opts used only when spawning
 */
export async function startRollcall({ heartbeatMs = 1000, missed = 3, offlineGraceMs = 0 } = {}) {
  if (process.env.ROLLCALL_URL) {
    return {
      url: process.env.ROLLCALL_URL,
      heartbeatMs: Number(process.env.ROLLCALL_HEARTBEAT_MS || heartbeatMs),
      missed: Number(process.env.ROLLCALL_MISSED_HEARTBEATS || missed),
      offlineGraceMs: Number(process.env.ROLLCALL_OFFLINE_GRACE_MS || offlineGraceMs),
      stop: async () => {},
    }
  }
  const bin = locateBinary()
  const port = await freePort()
  const child = spawn(bin, [
    '--bind', `127.0.0.1:${port}`,
    '--heartbeat-interval', `${heartbeatMs}ms`,
    '--missed-heartbeats', String(missed),
    '--offline-grace', `${offlineGraceMs}ms`,
    // No history file in the suite's working directory (statuses and last seen stay in memory).
    '--database-url', 'none',
  ], { stdio: ['ignore', 'ignore', 'inherit'] })
  // A failed or timed-out test must not leave the server behind or keep Node alive: the
  // child does not hold the event loop open and dies with this process.
  child.unref()
  process.once('exit', () => { if (child.exitCode === null) child.kill('SIGKILL') })
  const url = `http://127.0.0.1:${port}`
  await waitReady(url, child, 15000)
  return {
    url,
    heartbeatMs,
    missed,
    offlineGraceMs,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 3000).unref()
    }),
  }
}
