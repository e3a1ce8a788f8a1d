import { describe, expect, it, vi, afterEach } from 'vitest'
import { api, ApiError, csrfToken, describeAction, formatDate, shortAccount } from './api'

describe('csrfToken', () => {
  it.each([
    ['mm_csrf=abc; other=1', 'abc'],
    ['other=1; mm_csrf=a%2Fb', 'a/b'],
    ['mm_csrf_x=nope', ''],
    ['', ''],
  ])('%s', (cookie, want) => expect(csrfToken(cookie)).toBe(want))
})

describe('formatDate', () => {
  it.each([
    ['20240131', '31 January 2024'],
    ['2024013', 'Date unknown'],
    ['', 'Date unknown'],
  ])('%s', (da, want) => expect(formatDate(da)).toBe(want))
})

describe('words', () => {
  it('shortens accounts', () => expect(shortAccount('GABCDEFGHIJKLMNOPQRSTUVWXYZ')).toBe('GABC…WXYZ'))
  it('describes known actions and passes others through', () => {
    expect(describeAction('grant.revoked')).toBe('Access was taken back')
    expect(describeAction('x.y')).toBe('x.y')
  })
})

describe('api', () => {
  afterEach(() => vi.unstubAllGlobals())
  it('sends the CSRF token on unsafe requests and refreshes once on 401', async () => {
    document.cookie = 'mm_csrf=tok'
    const calls: { url: string; init: RequestInit }[] = []
    const answers = [new Response('', { status: 401 }), new Response('{}', { status: 200 }),
      new Response('{"ok":true}', { status: 200, headers: { 'Content-Type': 'application/json' } })]
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      calls.push({ url, init })
      return answers.shift()!
    })
    const r = await api<{ ok: boolean }>('POST', '/grants', { a: 1 })
    expect(r.ok).toBe(true)
    expect(calls.map((c) => c.url)).toEqual(['/api/grants', '/api/auth/refresh', '/api/grants'])
    expect((calls[0].init.headers as Record<string, string>)['X-CSRF-Token']).toBe('tok')
  })
  it('turns problem+json into ApiError', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ status: 403, detail: 'no access' }), { status: 403 }))
    await expect(api('GET', '/shared/1.2')).rejects.toEqual(new ApiError(403, 'no access'))
  })
})
