// usePresence: track the current user in the presence channel while mounted.
import { useEffect, useRef, useState } from 'react'
import { createRealtimeClient, configKey, DEFAULT_ROOM, useRollcallConfig, type RollcallConfig } from './client'

/** What a tracked user looks like to watchers (the presence meta). */
export interface PresenceMeta {
  user_id: string
  user_type?: string
  name?: string
  /** `idle` while the page is hidden, else `online`. */
  status: 'online' | 'idle'
  /** When this hook started tracking (ISO 8601). */
  online_at: string
}

/** Options of {@link usePresence}. */
export interface UsePresenceOptions {
  userId: string | null | undefined
  userType?: string
  name?: string
  /** False (or no userId): do not connect. Default true. */
  enabled?: boolean
  /** Overrides the provider's config. */
  config?: RollcallConfig
}

/** This user's own state: `connecting` until the channel is joined and tracked. */
export type OwnStatus = 'connecting' | 'online' | 'idle' | 'offline'

function pageHidden(): boolean {
  return typeof document !== 'undefined' && document.visibilityState === 'hidden'
}

/**
 * Tracks `userId` while mounted and enabled: online on connect (and re-tracked after every
 * reconnect), `idle` while the page is hidden, untracked on unmount and on `pagehide`.
 */
export function usePresence({ userId, userType, name, enabled = true, config }: UsePresenceOptions): {
  status: OwnStatus
} {
  const cfg = useRollcallConfig(config)
  const [status, setStatus] = useState<OwnStatus>('offline')
  const cfgRef = useRef(cfg)
  cfgRef.current = cfg
  const key = configKey(cfg)

  useEffect(() => {
    if (!enabled || !userId) {
      setStatus('offline')
      return
    }
    const c = cfgRef.current
    const client = createRealtimeClient(c)
    const channel = client.channel(c.room ?? DEFAULT_ROOM, { config: { presence: { key: userId } } })
    const onlineAt = new Date().toISOString()
    let visibility: 'online' | 'idle' = pageHidden() ? 'idle' : 'online'
    let joined = false
    let stopped = false
    setStatus('connecting')

    const track = () => {
      if (!joined || stopped) return
      const meta: PresenceMeta = { user_id: userId, status: visibility, online_at: onlineAt }
      if (userType !== undefined) meta.user_type = userType
      if (name !== undefined) meta.name = name
      void channel.track(meta)
      setStatus(visibility)
    }
    channel.subscribe((s) => {
      if (s === 'SUBSCRIBED') {
        // realtime-js does not re-track after a rejoin (protocol §4.6): do it on every SUBSCRIBED.
        joined = true
        track()
      } else {
        joined = false
        if (!stopped) setStatus('connecting')
      }
    })

    const onVisibility = () => {
      const next = pageHidden() ? 'idle' : 'online'
      if (next !== visibility) {
        visibility = next
        track()
      }
    }
    const stop = () => {
      if (stopped) return
      stopped = true
      joined = false
      void channel.untrack()
      void client.disconnect()
    }
    const onPageHide = () => {
      stop()
      setStatus('offline')
    }
    const onPageShow = () => {
      // Back from the back/forward cache (realtime-js's socket reconnects by itself on
      // pageshow; without this the channel would rejoin untracked).
      if (stopped) {
        stopped = false
        setStatus('connecting')
        client.connect()
      }
    }
    document.addEventListener('visibilitychange', onVisibility)
    window.addEventListener('pagehide', onPageHide)
    window.addEventListener('pageshow', onPageShow)
    return () => {
      document.removeEventListener('visibilitychange', onVisibility)
      window.removeEventListener('pagehide', onPageHide)
      window.removeEventListener('pageshow', onPageShow)
      stop()
    }
  }, [userId, userType, name, enabled, key])

  return { status }
}
