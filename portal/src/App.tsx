import { useCallback, useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react'
import {
  api, ApiError, describeAction, formatDate, shortAccount,
  type AccessRequest, type Activity, type ChainAction, type Me, type Study, type StudyDetail,
} from './api'
import { walletAddress, walletSign } from './wallet'
import { addPasskey, passkeysSupported, signInWithPasskey, type Passkey } from './passkey'

// ---- routing: the path is the state ----

function usePath(): [string, (p: string) => void] {
  const [path, setPath] = useState(window.location.pathname)
  useEffect(() => {
    const on = () => setPath(window.location.pathname)
    window.addEventListener('popstate', on)
    return () => window.removeEventListener('popstate', on)
  }, [])
  const go = useCallback((p: string) => {
    window.history.pushState(null, '', p)
    setPath(p)
    window.scrollTo(0, 0)
  }, [])
  return [path, go]
}

type Go = (p: string) => void

function Link({ to, go, children, current }: { to: string; go: Go; children: ReactNode; current?: boolean }) {
  return (
    <a
      href={to}
      aria-current={current ? 'page' : undefined}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return
        e.preventDefault()
        go(to)
      }}
    >
      {children}
    </a>
  )
}

// ---- data loading ----

function useLoad<T>(path: string | null, deps: unknown[] = []): { data?: T; error?: ApiError; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: ApiError }>({})
  const [n, setN] = useState(0)
  useEffect(() => {
    if (!path) return
    let live = true
    api<T>('GET', path)
      .then((data) => live && setState({ data }))
      .catch((error) => live && setState({ error }))
    return () => {
      live = false
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [path, n, ...deps])
  return { ...state, reload: () => setN((x) => x + 1) }
}

function Loading({ what }: { what: string }) {
  return <p role="status">Loading {what}…</p>
}

function ErrorNote({ error }: { error: Error }) {
  return <p role="alert" className="error">{error.message}</p>
}

// ---- chain actions: describe, confirm, sign ----

interface Pending {
  method: string
  path: string
  body?: unknown
  description: string
  onDone: () => void
}

function useChain(me: Me) {
  const [pending, setPending] = useState<Pending | null>(null)
  const [result, setResult] = useState<ChainAction | null>(null)
  const [error, setError] = useState<Error | null>(null)
  const [busy, setBusy] = useState(false)

  const start = async (method: string, path: string, body: unknown, onDone: () => void) => {
    setError(null)
    setResult(null)
    try {
      const sep = path.includes('?') ? '&' : '?'
      const p = await api<ChainAction>(method, path + sep + 'preview=true', body)
      setPending({ method, path, body, description: p.description, onDone })
    } catch (e) {
      setError(e as Error)
    }
  }
  const confirm = async () => {
    if (!pending) return
    setBusy(true)
    try {
      let r = await api<ChainAction>(pending.method, pending.path, pending.body)
      if (r.status === 'needs_signature' && r.transaction && r.id) {
        const signed = await walletSign(r.transaction, r.network_passphrase ?? me.network_passphrase, me.account)
        r = await api<ChainAction>('POST', '/transactions/' + r.id, { transaction: signed })
      }
      setResult(r)
      pending.onDone()
    } catch (e) {
      setError(e as Error)
    } finally {
      setBusy(false)
      setPending(null)
    }
  }
  const view = (
    <>
      {pending && (
        <Confirm
          description={pending.description}
          signer={me.signs_with === 'wallet' ? 'your Freighter wallet' : 'Medimint on your behalf'}
          busy={busy}
          onConfirm={confirm}
          onCancel={() => setPending(null)}
        />
      )}
      {busy && <p role="status">Recording on the network…</p>}
      {error && <ErrorNote error={error} />}
      {result && (
        <p role="status" className="ok">
          Done: {result.description}{' '}
          {result.tx_url && <a href={result.tx_url} target="_blank" rel="noreferrer">See it on the network (opens in a new tab)</a>}
        </p>
      )}
    </>
  )
  return { start, view }
}

function Confirm({ description, signer, busy, onConfirm, onCancel }: {
  description: string; signer: string; busy: boolean; onConfirm: () => void; onCancel: () => void
}) {
  const ref = useRef<HTMLHeadingElement>(null)
  useEffect(() => ref.current?.focus(), [])
  return (
    <div className="backdrop">
      <div role="alertdialog" aria-modal="true" aria-labelledby="confirm-title" aria-describedby="confirm-text" className="dialog"
        onKeyDown={(e) => e.key === 'Escape' && onCancel()}>
        <h2 id="confirm-title" tabIndex={-1} ref={ref}>Please check before signing</h2>
        <p id="confirm-text">{description}</p>
        <p className="muted">This will be signed by {signer}. There is nothing to pay.</p>
        <div className="row">
          <button type="button" className="primary" onClick={onConfirm} disabled={busy}>Confirm and sign</button>
          <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
        </div>
      </div>
    </div>
  )
}

// ---- sign-in ----

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await api('POST', '/auth/password', { email, password, cookie: true })
      onSignedIn()
    } catch (err) {
      const s = (err as ApiError).status
      setError(s === 401 ? 'That e-mail address and password do not match.' : (err as Error).message)
    } finally {
      setBusy(false)
    }
  }
  const freighter = async () => {
    setError(null)
    try {
      const address = await walletAddress()
      const ch = await api<{ transaction: string; network_passphrase: string }>('GET', '/auth/sep10?account=' + encodeURIComponent(address))
      const signed = await walletSign(ch.transaction, ch.network_passphrase, address)
      await api('POST', '/auth/sep10', { transaction: signed, cookie: true })
      onSignedIn()
    } catch (err) {
      setError((err as Error).message)
    }
  }
  const passkey = async () => {
    setError(null)
    try {
      await signInWithPasskey()
      onSignedIn()
    } catch (err) {
      const s = (err as ApiError).status
      setError(s === 401 ? 'That passkey is not known here.' : (err as Error).message)
    }
  }
  return (
    <main id="main" className="narrow">
      <h1>Sign in to Medimint</h1>
      <p>Your medical images, shared only with the people you choose.</p>
      <form onSubmit={submit} className="card" aria-describedby={error ? 'signin-error' : undefined}>
        <label htmlFor="email">E-mail address</label>
        <input id="email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        <button type="submit" className="primary" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
      {passkeysSupported() && (
        <div className="card">
          <h2>Added a passkey?</h2>
          <p>Sign in with your fingerprint, face or device PIN; no password needed.</p>
          <button type="button" onClick={passkey}>Sign in with a passkey</button>
        </div>
      )}
      <div className="card">
        <h2>Have your own Stellar wallet?</h2>
        <p>Sign in by approving a one-time message in Freighter. Nothing is paid or sent.</p>
        <button type="button" onClick={freighter}>Sign in with Freighter</button>
      </div>
      {error && <p id="signin-error" role="alert" className="error">{error}</p>}
    </main>
  )
}

// ---- patient views ----

function StatusBadge({ s }: { s: Study }) {
  return s.status === 'minted'
    ? <span className="badge ok">On the network</span>
    : <span className="badge">Being recorded</span>
}

function Studies({ go }: { go: Go }) {
  const { data, error } = useLoad<Study[]>('/studies')
  if (error) return <ErrorNote error={error} />
  if (!data) return <Loading what="your studies" />
  return (
    <>
      <h1>My studies</h1>
      {data.length === 0 && <p>No studies yet. They appear here after your imaging appointment.</p>}
      <ul className="cards">
        {data.map((s) => (
          <li key={s.study_instance_uid} className="card study">
            {s.frame_url && <img src={s.frame_url} alt={`First image of the ${s.modalities.join('/')} study`} width={96} height={96} />}
            <div>
              <h2><Link to={'/studies/' + s.study_instance_uid} go={go}>{s.description || s.modalities.join('/') + ' study'}</Link></h2>
              <p>{formatDate(s.study_date)} · {s.modalities.join(', ') || 'Unknown modality'} · {s.instances} image{s.instances === 1 ? '' : 's'}</p>
              <p><StatusBadge s={s} /> {s.mint_tx_url && <a href={s.mint_tx_url} target="_blank" rel="noreferrer">Record on the network</a>}</p>
            </div>
          </li>
        ))}
      </ul>
    </>
  )
}

function inDays(n: number): string {
  const d = new Date(Date.now() + n * 86400e3)
  return d.toISOString().slice(0, 10)
}

function StudyPage({ uid, me }: { uid: string; me: Me }) {
  const { data, error, reload } = useLoad<StudyDetail>('/studies/' + uid)
  const chain = useChain(me)
  const [grantee, setGrantee] = useState('')
  const [scope, setScope] = useState('retrieve')
  const [until, setUntil] = useState(inDays(30))
  const [to, setTo] = useState('')
  if (error) return <ErrorNote error={error} />
  if (!data) return <Loading what="the study" />
  const title = data.description || data.modalities.join('/') + ' study'
  const grant = (e: FormEvent) => {
    e.preventDefault()
    chain.start('POST', '/grants', {
      study_instance_uid: uid, grantee, scope: [scope], expires_at: new Date(until + 'T23:59:59Z').toISOString(),
    }, () => { setGrantee(''); setTimeout(reload, 300) })
  }
  const transfer = (e: FormEvent) => {
    e.preventDefault()
    chain.start('POST', '/transfers', { study_instance_uid: uid, to }, () => setTimeout(reload, 300))
  }
  return (
    <>
      <h1>{title}</h1>
      <p>{formatDate(data.study_date)} · {data.modalities.join(', ')} · <StatusBadge s={data} />{' '}
        {data.mint_tx_url && <a href={data.mint_tx_url} target="_blank" rel="noreferrer">Record on the network</a>}</p>
      {data.frame_url && <img className="frame" src={data.frame_url} alt={`First image of ${title}`} />}
      <h2>Series</h2>
      <table>
        <thead><tr><th scope="col">Number</th><th scope="col">Type</th><th scope="col">Description</th><th scope="col">Images</th></tr></thead>
        <tbody>
          {data.series_list.map((s) => (
            <tr key={s.series_instance_uid}><td>{s.number ?? '–'}</td><td>{s.modality}</td><td>{s.description || '–'}</td><td>{s.instances}</td></tr>
          ))}
        </tbody>
      </table>
      {chain.view}
      <h2>Who can see this study</h2>
      {data.grants.filter((g) => g.state === 'active').length === 0 && <p>Only you.</p>}
      <ul className="plain">
        {data.grants.filter((g) => g.state === 'active').map((g) => (
          <li key={g.grantee} className="card row">
            <span>{g.grantee_name || shortAccount(g.grantee)} can {g.scope.includes('retrieve') ? 'see and download the images' : 'see the description'} until {new Date(g.expires_at).toLocaleDateString('en-GB')}</span>
            <button type="button" onClick={() => chain.start('DELETE', `/grants/${encodeURIComponent(g.token.split(':')[0])}/${encodeURIComponent(g.grantee)}`, undefined, () => setTimeout(reload, 300))}>
              Revoke access for {g.grantee_name || shortAccount(g.grantee)}
            </button>
          </li>
        ))}
      </ul>
      {data.status === 'minted' ? (
        <>
          <form className="card" onSubmit={grant}>
            <h3>Share this study</h3>
            <label htmlFor="grantee">Clinician's e-mail address or Stellar account</label>
            <input id="grantee" required value={grantee} onChange={(e) => setGrantee(e.target.value)} />
            <fieldset>
              <legend>What they may do</legend>
              <label className="inline"><input type="radio" name="scope" value="retrieve" checked={scope === 'retrieve'} onChange={() => setScope('retrieve')} /> See and download the images</label>
              <label className="inline"><input type="radio" name="scope" value="query" checked={scope === 'query'} onChange={() => setScope('query')} /> See the description only</label>
            </fieldset>
            <label htmlFor="until">Until (inclusive)</label>
            <input id="until" type="date" required min={inDays(0)} value={until} onChange={(e) => setUntil(e.target.value)} />
            <button type="submit" className="primary">Share…</button>
          </form>
          <form className="card" onSubmit={transfer}>
            <h3>Transfer this study</h3>
            <p>Give the record to someone else, for example a guardian. You will no longer hold it.</p>
            <label htmlFor="to">Their e-mail address or Stellar account</label>
            <input id="to" required value={to} onChange={(e) => setTo(e.target.value)} />
            <button type="submit">Transfer…</button>
          </form>
        </>
      ) : <p>You can share this study once it is recorded on the network.</p>}
    </>
  )
}

function Requests({ me }: { me: Me }) {
  const { data, error, reload } = useLoad<AccessRequest[]>('/requests')
  const chain = useChain(me)
  const [ref, setRef] = useState('')
  const [until, setUntil] = useState(inDays(14))
  if (error) return <ErrorNote error={error} />
  if (!data) return <Loading what="requests" />
  const incoming = data.filter((r) => r.incoming)
  const outgoing = data.filter((r) => !r.incoming)
  const ask = (e: FormEvent) => {
    e.preventDefault()
    chain.start('POST', '/requests', { study_ref: ref, scope: ['retrieve'], until: new Date(until + 'T23:59:59Z').toISOString() },
      () => setTimeout(reload, 300))
  }
  return (
    <>
      <h1>Access requests</h1>
      {chain.view}
      <h2>Asking for your studies</h2>
      {incoming.length === 0 && <p>No one has asked.</p>}
      <ul className="plain">
        {incoming.map((r) => (
          <li key={r.request_tx} className="card">
            <p>{r.requester_name || shortAccount(r.requester)} asks to {r.scope.includes('retrieve') ? 'see and download' : 'see the description of'} a study until {new Date(r.until).toLocaleDateString('en-GB')}. <span className="badge">{r.state}</span></p>
            {r.state === 'pending' && (
              <div className="row">
                <button type="button" className="primary" onClick={() => chain.start('POST', `/requests/${r.request_tx}/approve`, undefined, () => setTimeout(reload, 300))}>Approve…</button>
                <button type="button" onClick={() => chain.start('POST', `/requests/${r.request_tx}/deny`, undefined, () => setTimeout(reload, 300))}>Deny…</button>
              </div>
            )}
          </li>
        ))}
      </ul>
      {(me.roles.includes('clinician') || outgoing.length > 0) && (
        <>
          <h2>Your requests</h2>
          <ul className="plain">
            {outgoing.map((r) => <li key={r.request_tx}>{r.token.split(':')[0]}: <span className="badge">{r.state}</span></li>)}
          </ul>
          <form className="card" onSubmit={ask}>
            <h3>Ask for access to a study</h3>
            <label htmlFor="ref">Study reference (from the patient or the referral)</label>
            <input id="ref" required value={ref} onChange={(e) => setRef(e.target.value)} />
            <label htmlFor="req-until">Until</label>
            <input id="req-until" type="date" required value={until} onChange={(e) => setUntil(e.target.value)} />
            <button type="submit" className="primary">Ask…</button>
          </form>
        </>
      )}
    </>
  )
}

function ActivityPage() {
  const { data, error } = useLoad<Activity[]>('/activity')
  if (error) return <ErrorNote error={error} />
  if (!data) return <Loading what="activity" />
  return (
    <>
      <h1>Activity</h1>
      {data.length === 0 && <p>Nothing yet.</p>}
      <ol className="timeline">
        {data.map((a) => (
          <li key={a.seq}>
            <time dateTime={a.at}>{new Date(a.at).toLocaleString('en-GB')}</time>
            <span>{describeAction(a.action)}</span>
            {a.tx_url && <a href={a.tx_url} target="_blank" rel="noreferrer">Proof on the network</a>}
          </li>
        ))}
      </ol>
    </>
  )
}

interface Note { id: number; kind: string; title: string; body: string; at: string; read: boolean }

function Notifications({ items, tick, onRead }: { items: string[]; tick: number; onRead: () => void }) {
  const { data, error } = useLoad<Note[]>('/notifications', [tick])
  useEffect(() => {
    if (data?.some((n) => !n.read)) api('POST', '/notifications/read').then(onRead).catch(() => undefined)
  }, [data, onRead])
  return (
    <>
      <h1>Notifications</h1>
      {error && <ErrorNote error={error} />}
      {data && data.length === 0 && items.length === 0 && <p>No notifications.</p>}
      <ul className="plain">
        {data?.map((n) => (
          <li key={n.id} className="card">
            <h2>{n.title}{!n.read && <span className="badge">New</span>}</h2>
            <p>{n.body}</p>
            <p><time dateTime={n.at}>{new Date(n.at).toLocaleString('en-GB')}</time></p>
          </li>
        ))}
      </ul>
      {items.length > 0 && (
        <>
          <h2>Live updates</h2>
          <ul className="plain">{items.map((n, i) => <li key={i} className="card">{n}</li>)}</ul>
        </>
      )}
    </>
  )
}

// ---- profile: passkeys ----

function Profile({ me }: { me: Me }) {
  const list = useLoad<Passkey[]>(me.custodial ? '/passkeys' : null)
  const [name, setName] = useState('')
  const [note, setNote] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const add = async (e: FormEvent) => {
    e.preventDefault()
    setError(null)
    setNote(null)
    try {
      const p = await addPasskey(name || 'Passkey')
      setNote(`Passkey "${p.name}" added. You can now sign in with it.`)
      setName('')
      list.reload()
    } catch (err) {
      setError((err as Error).message)
    }
  }
  const remove = async (p: Passkey) => {
    await api('DELETE', '/passkeys/' + encodeURIComponent(p.id))
    list.reload()
  }
  return (
    <>
      <h1>Profile</h1>
      <p>{me.display_name}{me.email && ` · ${me.email}`}</p>
      <h2>Passkeys</h2>
      {!me.custodial ? <p>You sign in with your own wallet.</p> : (
        <>
          <p>A passkey lets you sign in with your fingerprint, face or device PIN instead of your password.</p>
          {list.data && list.data.length === 0 && <p>You have no passkeys yet.</p>}
          <ul className="plain">
            {list.data?.map((p) => (
              <li key={p.id} className="card">
                <strong>{p.name}</strong> · added {new Date(p.created_at).toLocaleDateString('en-GB')}
                {p.last_used_at && ` · last used ${new Date(p.last_used_at).toLocaleDateString('en-GB')}`}
                {' '}<button type="button" onClick={() => remove(p)}>Remove passkey {p.name}</button>
              </li>
            ))}
          </ul>
          {passkeysSupported() ? (
            <form className="card" onSubmit={add}>
              <label htmlFor="passkey-name">Name for the new passkey</label>
              <input id="passkey-name" value={name} maxLength={64} placeholder="e.g. My phone" onChange={(e) => setName(e.target.value)} />
              <button type="submit">Add a passkey</button>
            </form>
          ) : <p>This browser does not support passkeys.</p>}
          {note && <p role="status">{note}</p>}
          {error && <p role="alert" className="error">{error}</p>}
        </>
      )}
    </>
  )
}

// ---- clinician views ----

function Shared({ go }: { go: Go }) {
  const { data, error } = useLoad<Study[]>('/shared')
  if (error) return <ErrorNote error={error} />
  if (!data) return <Loading what="shared studies" />
  return (
    <>
      <h1>Shared with me</h1>
      {data.length === 0 && <p>No patient has shared a study with you.</p>}
      <ul className="cards">
        {data.map((s) => (
          <li key={s.study_instance_uid} className="card">
            <h2><Link to={'/shared/' + s.study_instance_uid} go={go}>{s.description || s.modalities.join('/') + ' study'}</Link></h2>
            <p>{formatDate(s.study_date)} · shared until {s.expires_at && new Date(s.expires_at).toLocaleDateString('en-GB')}</p>
          </li>
        ))}
      </ul>
    </>
  )
}

function SharedStudy({ uid }: { uid: string }) {
  const { data, error } = useLoad<Study>('/shared/' + uid)
  const [viewer, setViewer] = useState<string | null>(null)
  if (error) {
    return (
      <>
        <h1>Access denied</h1>
        <p role="alert" className="error">{error.status === 403 ? 'You no longer have access to this study.' : error.message}</p>
      </>
    )
  }
  if (!data) return <Loading what="the study" />
  const title = data.description || data.modalities.join('/') + ' study'
  const open = async () => {
    const l = await api<{ url: string; token: string }>('POST', `/shared/${uid}/viewer`)
    setViewer(l.url || 'Viewer token issued (no viewer configured on this server).')
  }
  return (
    <>
      <h1>{title}</h1>
      <p>{formatDate(data.study_date)} · {data.modalities.join(', ')}</p>
      {data.frame_url && <img className="frame" src={data.frame_url} alt={`First image of ${title}`} />}
      <button type="button" onClick={open}>Open in the viewer</button>
      {viewer && (viewer.startsWith('http') ? <p><a href={viewer} target="_blank" rel="noreferrer">Open the viewer (new tab)</a></p> : <p role="status">{viewer}</p>)}
    </>
  )
}

// ---- issuer admin ----

function Admin() {
  const ingest = useLoad<{ study_instance_uid: string; received: string; modalities: string[]; instances: number; stage: string; mint_tx_url?: string }[]>('/admin/ingest')
  const mods = useLoad<{ ae_title: string; host: string; port?: number; description: string }[]>('/admin/modalities')
  const staff = useLoad<{ id: string; email?: string; display_name: string; memberships: { role: string }[] }[]>('/admin/staff')
  const [ae, setAe] = useState('')
  const [host, setHost] = useState('')
  const [email, setEmail] = useState('')
  const [role, setRole] = useState('clinician')
  const [note, setNote] = useState<string | null>(null)
  const saveAE = async (e: FormEvent) => {
    e.preventDefault()
    await api('PUT', '/admin/modalities/' + encodeURIComponent(ae), { host, description: '' })
    setAe(''); setHost(''); mods.reload()
  }
  const invite = async (e: FormEvent) => {
    e.preventDefault()
    const r = await api<{ token: string }>('POST', '/admin/invitations', { email, role })
    setNote(`Invitation created. Give this code to ${email}: ${r.token}`)
    setEmail('')
  }
  return (
    <>
      <h1>Organisation</h1>
      <h2>Ingest</h2>
      {ingest.data ? (
        <table>
          <thead><tr><th scope="col">Received</th><th scope="col">Type</th><th scope="col">Images</th><th scope="col">Stage</th></tr></thead>
          <tbody>{ingest.data.map((s) => (
            <tr key={s.study_instance_uid}><td>{new Date(s.received).toLocaleString('en-GB')}</td><td>{s.modalities.join(', ')}</td><td>{s.instances}</td>
              <td>{s.mint_tx_url ? <a href={s.mint_tx_url} target="_blank" rel="noreferrer">{s.stage}</a> : s.stage}</td></tr>
          ))}</tbody>
        </table>
      ) : <Loading what="ingest status" />}
      <h2>Modalities</h2>
      <ul className="plain">{mods.data?.map((m) => <li key={m.ae_title}>{m.ae_title} {m.host && `(${m.host}${m.port ? ':' + m.port : ''})`}</li>)}</ul>
      <form className="card" onSubmit={saveAE}>
        <label htmlFor="ae">AE title</label>
        <input id="ae" required maxLength={16} value={ae} onChange={(e) => setAe(e.target.value)} />
        <label htmlFor="host">Host</label>
        <input id="host" value={host} onChange={(e) => setHost(e.target.value)} />
        <button type="submit">Save modality</button>
      </form>
      <h2>Staff</h2>
      <ul className="plain">{staff.data?.map((u) => <li key={u.id}>{u.display_name || u.email}: {u.memberships.map((m) => m.role).join(', ')}</li>)}</ul>
      <form className="card" onSubmit={invite}>
        <label htmlFor="inv-email">E-mail address</label>
        <input id="inv-email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="inv-role">Role</label>
        <select id="inv-role" value={role} onChange={(e) => setRole(e.target.value)}>
          <option value="clinician">Clinician</option><option value="technologist">Technologist</option>
          <option value="issuer_admin">Issuer admin</option><option value="auditor">Auditor</option><option value="patient">Patient</option>
        </select>
        <button type="submit">Invite</button>
      </form>
      {note && <p role="status">{note}</p>}
    </>
  )
}

// ---- shell ----

export default function App() {
  const [path, go] = usePath()
  const [me, setMe] = useState<Me | null | undefined>(undefined)
  const [notes, setNotes] = useState<string[]>([])
  const [noteTick, setNoteTick] = useState(0)
  const [unread, setUnread] = useState(0)
  const countUnread = useCallback(() => {
    api<Note[]>('GET', '/notifications').then((l) => setUnread(l.filter((n) => !n.read).length)).catch(() => undefined)
  }, [])
  const loadMe = useCallback(() => {
    api<Me>('GET', '/me').then(setMe).catch(() => setMe(null))
  }, [])
  useEffect(loadMe, [loadMe])
  useEffect(() => {
    if (!me) return
    const es = new EventSource('/api/events')
    es.addEventListener('change', (e) => {
      const ev = JSON.parse((e as MessageEvent).data) as { kind: string }
      if (ev.kind.includes('.') || ev.kind === 'break-glass') {
        // A stored notification (package notify): reload the list.
        setNoteTick((x) => x + 1)
        return
      }
      const text = ev.kind === 'grant' ? 'Access to one of your studies changed.'
        : ev.kind === 'request' ? 'There is news about an access request.'
        : ev.kind === 'record' ? 'One of your records changed on the network.' : 'Something changed.'
      setNotes((n) => [text, ...n].slice(0, 50))
    })
    return () => es.close()
  }, [me])
  useEffect(() => {
    if (me) countUnread()
  }, [me, noteTick, countUnread])
  useEffect(() => {
    const h = document.querySelector('main h1') as HTMLElement | null
    h?.setAttribute('tabindex', '-1')
    h?.focus()
  }, [path, me])

  if (me === undefined) return <main id="main"><Loading what="Medimint" /></main>
  if (me === null) return <SignIn onSignedIn={loadMe} />

  const signOut = async () => {
    await api('POST', '/auth/logout').catch(() => undefined)
    setMe(null)
    go('/')
  }
  const nav: [string, string][] = [['/', 'My studies'], ['/requests', 'Requests'], ['/activity', 'Activity'],
    ['/notifications', `Notifications${unread ? ` (${unread})` : ''}`], ['/profile', 'Profile']]
  if (me.roles.includes('clinician')) nav.push(['/shared', 'Shared with me'])
  if (me.roles.includes('issuer_admin')) nav.push(['/admin', 'Organisation'])

  let page: ReactNode
  const m = path.match(/^\/(studies|shared)\/([0-9.]+)$/)
  if (m && m[1] === 'studies') page = <StudyPage uid={m[2]} me={me} />
  else if (m) page = <SharedStudy uid={m[2]} />
  else if (path === '/requests') page = <Requests me={me} />
  else if (path === '/activity') page = <ActivityPage />
  else if (path === '/notifications') page = <Notifications items={notes} tick={noteTick} onRead={countUnread} />
  else if (path === '/profile') page = <Profile me={me} />
  else if (path === '/shared') page = <Shared go={go} />
  else if (path === '/admin') page = <Admin />
  else page = <Studies go={go} />

  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header>
        <p className="brand">Medimint</p>
        <nav aria-label="Main">
          <ul>{nav.map(([to, label]) => <li key={to}><Link to={to} go={go} current={path === to}>{label}</Link></li>)}</ul>
        </nav>
        <p className="who">Signed in as {me.display_name || me.email || shortAccount(me.account ?? '')}
          <button type="button" onClick={signOut}>Sign out</button></p>
      </header>
      <main id="main">{page}</main>
    </>
  )
}
