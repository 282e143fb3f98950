// Starts one real Rollcall server for the suite (see ../test-server.mjs) and hands its URL to
// the tests through `inject('rollcall')`.
import type { TestProject } from 'vitest/node'
// @ts-expect-error plain ESM helper shared with clients/e2e
import { startRollcall } from '../../test-server.mjs'

declare module 'vitest' {
  export interface ProvidedContext {
    rollcall: { url: string; heartbeatMs: number; missed: number; offlineGraceMs: number }
  }
}

export default async function setup(project: TestProject) {
  const server = await startRollcall({ heartbeatMs: 1000, missed: 3, offlineGraceMs: 1000 })
  project.provide('rollcall', {
    url: server.url,
    heartbeatMs: server.heartbeatMs,
    missed: server.missed,
    offlineGraceMs: server.offlineGraceMs,
  })
  return async () => {
    await server.stop()
  }
}
