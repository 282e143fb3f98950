// Presence on Rollcall for an app that already uses supabase-js.
//
// The app keeps its main client (`createClient(SUPABASE_URL, SUPABASE_ANON_KEY)`) for the
// database, auth and storage, and makes a second one for Rollcall's URL: only its realtime part
// is used. supabase-js signs the second client's sockets with its own anon key, so the user's
// token is handed over with `setAuth` whenever the main client's session changes (sign-in,
// refresh, sign-out): every joined channel gets the new token, the socket stays open.
import { createClient } from '@supabase/supabase-js'

/**
 * A supabase-js client for Rollcall at `rollcallUrl` (`https://rollcall.example.com`), fed the
 * session of `main` (the app's own supabase client), if given.
 * @param {string} rollcallUrl
 * @param {string} apikey the anon key Rollcall verifies (any value for an open Rollcall)
 * @param {{ main?: import('@supabase/supabase-js').SupabaseClient, realtime?: object }} [opts]
 */
export function createRollcallClient(rollcallUrl, apikey, opts = {}) {
  const rollcall = createClient(rollcallUrl, apikey, {
    // This client never signs in and must not share the main client's stored session.
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { heartbeatIntervalMs: 25_000, ...(opts.realtime ?? {}) },
  })
  if (opts.main) {
    opts.main.auth.onAuthStateChange((_event, session) => {
      void rollcall.realtime.setAuth(session?.access_token ?? null)
    })
  }
  return rollcall
}

/**
 * Joins `room` as `userId` and tracks `meta`; calls `onChange(members)` with the room's
 * members (`[{ key, metas }]`, sorted by key) after every presence sync.
 * @returns {Promise<() => Promise<void>>} leaves the room
 */
export async function joinRoom(rollcall, room, userId, meta, onChange) {
  const channel = rollcall.channel(room, { config: { presence: { key: userId } } })
  channel.on('presence', { event: 'sync' }, () => {
    const state = channel.presenceState()
    onChange(Object.keys(state).sort().map((key) => ({ key, metas: state[key] })))
  })
  await new Promise((resolve, reject) => {
    channel.subscribe(async (status, err) => {
      if (status === 'SUBSCRIBED') {
        await channel.track(meta) // re-tracked on every (re)join: realtime-js does not
        resolve()
      } else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        reject(err ?? new Error(status))
      }
    })
  })
  return async () => {
    await rollcall.removeChannel(channel)
  }
}
