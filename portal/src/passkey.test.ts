import { describe, expect, it } from 'vitest'
import { creationOptions, fromB64u, requestOptions, toB64u } from './passkey'

describe('passkey encoding', () => {
  it('round-trips base64url without padding', () => {
    for (const bytes of [[], [0], [0xff, 0xfe], [1, 2, 3, 4, 5, 250, 251, 252]]) {
      const s = toB64u(new Uint8Array(bytes))
      expect(s).not.toMatch(/[+/=]/)
      expect(Array.from(new Uint8Array(fromB64u(s)))).toEqual(bytes)
    }
  })
  it('decodes the binary members of the options', () => {
    const c = creationOptions({
      challenge: 'AQID', rp: { id: 'localhost', name: 'Medimint' }, user: { id: '_-8', name: 'p@example.org', displayName: 'P' },
      pubKeyCredParams: [{ type: 'public-key', alg: -7 }], excludeCredentials: [{ type: 'public-key', id: 'BAU' }],
    })
    expect(Array.from(new Uint8Array(c.challenge as ArrayBuffer))).toEqual([1, 2, 3])
    expect(Array.from(new Uint8Array(c.user.id as ArrayBuffer))).toEqual([0xff, 0xef])
    expect(Array.from(new Uint8Array(c.excludeCredentials![0].id as ArrayBuffer))).toEqual([4, 5])
    expect(c.rp.id).toBe('localhost')
    const r = requestOptions({ challenge: 'AQID', rpId: 'localhost', userVerification: 'required' })
    expect(r.allowCredentials).toBeUndefined()
    expect(r.userVerification).toBe('required')
  })
})
