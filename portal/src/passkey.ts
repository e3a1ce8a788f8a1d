// Passkeys (WebAuthn) in the browser. The server sends ceremony options
// as JSON with binary members in base64url; navigator.credentials wants
// ArrayBuffers and returns them; the answer goes back as JSON again (the
// shape of PublicKeyCredential.toJSON()).
import { api } from './api'

export interface Passkey {
  id: string
  name: string
  created_at: string
  last_used_at?: string
}

interface Ceremony {
  ceremony: string
  options: { publicKey: Record<string, unknown>; mediation?: string }
}

export function fromB64u(s: string): ArrayBuffer {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)
  const bin = atob(b64)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out.buffer
}

export function toB64u(b: ArrayBuffer | ArrayBufferView): string {
  const u = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
  let bin = ''
  for (const x of u) bin += String.fromCharCode(x)
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

type Descriptor = { id: string; type: string; transports?: string[] }

function descriptors(list: unknown): PublicKeyCredentialDescriptor[] | undefined {
  if (!Array.isArray(list)) return undefined
  return (list as Descriptor[]).map((d) => ({ ...d, id: fromB64u(d.id) }) as PublicKeyCredentialDescriptor)
}

// creationOptions decodes the server's options for credentials.create.
export function creationOptions(o: Record<string, unknown>): PublicKeyCredentialCreationOptions {
  const user = o.user as { id: string; name: string; displayName: string }
  return {
    ...(o as unknown as PublicKeyCredentialCreationOptions),
    challenge: fromB64u(o.challenge as string),
    user: { ...user, id: fromB64u(user.id) },
    excludeCredentials: descriptors(o.excludeCredentials),
  }
}

// requestOptions decodes the server's options for credentials.get.
export function requestOptions(o: Record<string, unknown>): PublicKeyCredentialRequestOptions {
  return {
    ...(o as unknown as PublicKeyCredentialRequestOptions),
    challenge: fromB64u(o.challenge as string),
    allowCredentials: descriptors(o.allowCredentials),
  }
}

// credentialJSON encodes what the authenticator answered.
export function credentialJSON(c: PublicKeyCredential): Record<string, unknown> {
  const r = c.response as AuthenticatorAttestationResponse & AuthenticatorAssertionResponse
  const response: Record<string, unknown> = { clientDataJSON: toB64u(r.clientDataJSON) }
  if ('attestationObject' in r && r.attestationObject) {
    response.attestationObject = toB64u(r.attestationObject)
    response.transports = typeof r.getTransports === 'function' ? r.getTransports() : []
  }
  if ('authenticatorData' in r && r.authenticatorData) {
    response.authenticatorData = toB64u(r.authenticatorData)
    response.signature = toB64u(r.signature)
    if (r.userHandle) response.userHandle = toB64u(r.userHandle)
  }
  return {
    id: c.id,
    rawId: toB64u(c.rawId),
    type: c.type,
    response,
    authenticatorAttachment: c.authenticatorAttachment ?? undefined,
    clientExtensionResults: c.getClientExtensionResults(),
  }
}

export function passkeysSupported(): boolean {
  return typeof window !== 'undefined' && 'PublicKeyCredential' in window && !!navigator.credentials
}

// signInWithPasskey runs the sign-in ceremony; the session arrives as
// cookies.
export async function signInWithPasskey(): Promise<void> {
  const c = await api<Ceremony>('POST', '/auth/passkey/begin')
  const cred = (await navigator.credentials.get({ publicKey: requestOptions(c.options.publicKey) })) as PublicKeyCredential | null
  if (!cred) throw new Error('No passkey was chosen.')
  await api('POST', '/auth/passkey/finish', { ceremony: c.ceremony, credential: credentialJSON(cred), cookie: true })
}

// addPasskey registers a new passkey for the signed-in user.
export async function addPasskey(name: string): Promise<Passkey> {
  const c = await api<Ceremony>('POST', '/passkeys/begin')
  const cred = (await navigator.credentials.create({ publicKey: creationOptions(c.options.publicKey) })) as PublicKeyCredential | null
  if (!cred) throw new Error('No passkey was created.')
  return api<Passkey>('POST', '/passkeys/finish', { ceremony: c.ceremony, name, credential: credentialJSON(cred) })
}
