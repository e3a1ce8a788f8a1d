// The portal API client: same-origin fetch with the session cookies, the
// double-submit CSRF token on every unsafe request, one refresh attempt
// on 401, and problem+json errors turned into ApiError.

export class ApiError extends Error {
  status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

export function csrfToken(cookie: string = document.cookie): string {
  for (const part of cookie.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === 'mm_csrf') return decodeURIComponent(v.join('='))
  }
  return ''
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken()
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  return fetch('/api' + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  })
}

let refreshing: Promise<boolean> | null = null

async function refresh(): Promise<boolean> {
  refreshing ??= send('POST', '/auth/refresh').then((r) => r.ok).finally(() => (refreshing = null))
  return refreshing
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let r = await send(method, path, body)
  if (r.status === 401 && !path.startsWith('/auth/') && (await refresh())) {
    r = await send(method, path, body)
  }
  if (!r.ok) {
    let msg = r.statusText
    try {
      const p = await r.json()
      msg = p.detail || p.title || msg
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, msg)
  }
  if (r.status === 204) return undefined as T
  return (await r.json()) as T
}

export type Role = 'patient' | 'clinician' | 'technologist' | 'issuer_admin' | 'auditor'

export interface Me {
  id: string
  email?: string
  display_name: string
  account?: string
  custodial: boolean
  org_id: string
  roles: Role[]
  account_url?: string
  signs_with: 'custodial' | 'wallet'
  network_passphrase: string
}

export interface Study {
  study_instance_uid: string
  study_date: string
  description: string
  modalities: string[]
  series: number
  instances: number
  status: 'pending' | 'minted'
  token?: string
  mint_tx_url?: string
  frame_url?: string
  study_ref?: string
  holder?: string
  expires_at?: string
  scope?: string[]
}

export interface Grant {
  token: string
  holder: string
  grantee: string
  grantee_name?: string
  scope: string[]
  expires_at: string
  state: string
  tx_url?: string
  study_instance_uid?: string
}

export interface StudyDetail extends Study {
  series_list: { series_instance_uid: string; modality: string; number?: number; description: string; instances: number }[]
  grants: Grant[]
}

export interface AccessRequest {
  request_tx: string
  token: string
  requester: string
  requester_name?: string
  scope: string[]
  until: string
  state: 'pending' | 'approved' | 'denied'
  requested_at: string
  tx_url?: string
  study_instance_uid?: string
  incoming: boolean
}

export interface ChainAction {
  status: 'preview' | 'submitted' | 'needs_signature'
  description: string
  tx_hash?: string
  tx_url?: string
  id?: string
  transaction?: string
  network_passphrase?: string
}

export interface Activity {
  seq: number
  at: string
  category: string
  action: string
  outcome: string
  actor: string
  resource: string
  reason?: string
  tx_url?: string
}

// formatDate turns a DICOM DA (YYYYMMDD) into a readable date.
export function formatDate(da: string): string {
  if (!/^\d{8}$/.test(da)) return 'Date unknown'
  const d = new Date(Date.UTC(+da.slice(0, 4), +da.slice(4, 6) - 1, +da.slice(6, 8)))
  return d.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
}

export function shortAccount(a: string): string {
  return a.length > 12 ? a.slice(0, 4) + '…' + a.slice(-4) : a
}

const actions: Record<string, string> = {
  'record.minted': 'Your record was created on the network',
  'record.transferred': 'A record was transferred',
  'grant.created': 'Access was given',
  'grant.revoked': 'Access was taken back',
  'grant.expired': 'Access ran out',
  'grant.superseded': 'Access ended with a transfer',
  'request.created': 'Someone asked for access',
  'request.approved': 'A request was approved',
  'request.denied': 'A request was refused',
  'portal.grant': 'You gave access',
  'portal.revoke': 'You took access back',
  'portal.request': 'You asked for access',
  'portal.approve': 'You approved a request',
  'portal.deny': 'You refused a request',
  'portal.transfer': 'You transferred a record',
}

export function describeAction(a: string): string {
  return actions[a] ?? a
}
