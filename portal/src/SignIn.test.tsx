import { afterEach, describe, expect, it, vi } from 'vitest'
import { cleanup, fireEvent, render, screen } from '@testing-library/react'
import { SignIn } from './App'

describe('SignIn', () => {
  afterEach(() => { cleanup(); vi.unstubAllGlobals() })
  it('has labelled fields and reports a failed sign-in', async () => {
    vi.stubGlobal('fetch', async () => new Response('{"detail":"sign-in failed"}', { status: 401 }))
    const done = vi.fn()
    render(<SignIn onSignedIn={done} />)
    fireEvent.change(screen.getByLabelText('E-mail address'), { target: { value: 'a@example.org' } })
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'wrong password' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('alert')).toHaveProperty('textContent', 'That e-mail address and password do not match.')
    expect(done).not.toHaveBeenCalled()
  })
  it('signs in with cookies', async () => {
    const bodies: string[] = []
    vi.stubGlobal('fetch', async (_u: string, init: RequestInit) => {
      bodies.push(String(init.body))
      return new Response('{}', { status: 200 })
    })
    const done = vi.fn()
    render(<SignIn onSignedIn={done} />)
    fireEvent.change(screen.getByLabelText('E-mail address'), { target: { value: 'a@example.org' } })
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    await vi.waitFor(() => expect(done).toHaveBeenCalled())
    expect(JSON.parse(bodies[0])).toEqual({ email: 'a@example.org', password: 'correct horse battery', cookie: true })
  })
})
