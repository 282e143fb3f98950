// A family app on @rollcall/react. Query parameters:
//   ?url=http://127.0.0.1:4000  the Rollcall server (default: the page's host on port 4000)
//   ?user=kid-1&name=Kid        be present as this user
//   ?watch=kid-1,kid-2          watch these users' status (the server's status watch)
//   ?room=family                the room whose members are listed
import { StrictMode, useState } from 'react'
import { createRoot } from 'react-dom/client'
import {
  RollcallProvider,
  useChildrenPresence,
  useMyPresence,
  usePresence,
  usePresenceList,
  type ChildStatus,
} from '@rollcall/react'

const q = new URLSearchParams(location.search)
const url = q.get('url') ?? `${location.protocol}//${location.hostname}:4000`
const user = q.get('user')
const watch = (q.get('watch') ?? '').split(',').filter(Boolean)

function Me({ userId }: { userId: string }) {
  const { status } = usePresence({ userId, name: q.get('name') ?? userId })
  const [mine, update] = useMyPresence<{ mood: string }>()
  return (
    <section>
      <h2>
        Me: {userId} <span id="me" data-status={status}>{status}</span>
      </h2>
      <label>
        mood{' '}
        <input id="mood" value={mine.mood ?? ''} onChange={(e) => update({ mood: e.target.value })} />
      </label>
    </section>
  )
}

function Members() {
  const members = usePresenceList<{ name?: string; mood?: string }>({ includeSelf: true })
  return (
    <section>
      <h2>In the room</h2>
      <ul id="members">
        {members.map((m) => (
          <li key={m.key} data-key={m.key}>
            {m.metas[0]?.name ?? m.key} ({m.metas.length}){m.metas[0]?.mood ? `: ${m.metas[0].mood}` : ''}
          </li>
        ))}
      </ul>
    </section>
  )
}

function Children({ ids }: { ids: string[] }) {
  const [log, setLog] = useState<string[]>([])
  const kids = useChildrenPresence({
    childIds: ids,
    onStatusChange: (id: string, now: ChildStatus, before: ChildStatus) =>
      setLog((l) => [...l, `${id} ${before}->${now}`]),
  })
  return (
    <section>
      <h2>Children {kids.connected ? '' : '(connecting)'}</h2>
      <ul id="children">
        {ids.map((id) => {
          const seen = kids.lastSeen(id)
          return (
            <li key={id} data-key={id} data-status={kids.statusOf(id)}>
              {id}: {kids.statusOf(id)}
              {seen !== null && kids.statusOf(id) === 'offline' ? `, last seen ${new Date(seen).toLocaleTimeString()}` : ''}
            </li>
          )
        })}
      </ul>
      <ol id="log">
        {log.map((l, i) => (
          <li key={i}>{l}</li>
        ))}
      </ol>
    </section>
  )
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <RollcallProvider config={{ url, apikey: q.get('apikey') ?? 'any' }} room={q.get('room') ?? 'family'}>
      {user && <Me userId={user} />}
      <Members />
      {watch.length > 0 && <Children ids={watch} />}
    </RollcallProvider>
  </StrictMode>,
)
