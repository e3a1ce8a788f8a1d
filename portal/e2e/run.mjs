// End-to-end test of the portal in Chromium (playwright-core driving
// Debian's /usr/bin/chromium). Started by portal/e2e_test.go, which runs
// the gateway with the portal API on a devnet and Postgres and passes
// BASE_URL, STUDY_UID, PATIENT_EMAIL, CLINICIAN_EMAIL and PASSWORD.
//
// Flow: the patient signs in and sees their study and its frame, shares
// it with the clinician (the transaction described in plain words before
// signing), the clinician sees it, the patient revokes, the clinician is
// refused. The patient also adds a passkey in their profile (a CDP
// virtual authenticator: CTAP2, internal, resident keys, user verified),
// signs out and signs in with it, and finds the new-study notification.
// axe-core must find no violations on any page; screenshots at 390 and
// 1280 px wide go to e2e/artifacts/.
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = dirname(fileURLToPath(import.meta.url))
const artifacts = join(here, 'artifacts')
mkdirSync(artifacts, { recursive: true })
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

const { BASE_URL, STUDY_UID, PATIENT_EMAIL, CLINICIAN_EMAIL, PASSWORD } = process.env
for (const [k, v] of Object.entries({ BASE_URL, STUDY_UID, PATIENT_EMAIL, CLINICIAN_EMAIL, PASSWORD })) {
  if (!v) throw new Error(`${k} is not set`)
}

let failures = 0
let passes = 0
function check(ok, what) {
  if (ok) passes++
  else failures++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
  // Playwright gives every launch a fresh, temporary user-data-dir.
})

async function axe(page, name) {
  await page.addScriptTag({ path: axePath })
  const r = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const res = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] })
    return res.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)
  })
  check(r.length === 0, `axe: no violations on ${name}${r.length ? '\n    ' + r.join('\n    ') : ''}`)
}

async function shots(page, name) {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 })
    await page.screenshot({ path: join(artifacts, `${name}-${width}.png`), fullPage: true })
  }
  await page.setViewportSize({ width: 1280, height: 900 })
}

async function session(email) {
  // bypassCSP lets axe be injected; the app itself runs under the CSP.
  const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => check(false, `no page error: ${e.message}`))
  await page.goto(BASE_URL + '/')
  await page.getByLabel('E-mail address').fill(email)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByRole('heading', { level: 1 }).filter({ hasNotText: 'Sign in' }).waitFor()
  return { ctx, page }
}

// reloadUntil reloads page until fn finds what it waits for (the chain
// watcher records transactions a moment after they apply).
async function reloadUntil(page, fn, what) {
  for (let i = 0; i < 40; i++) {
    if (await fn()) return true
    await page.waitForTimeout(250)
    await page.reload()
    await page.getByRole('heading', { level: 1 }).waitFor()
  }
  check(false, what)
  return false
}

async function chainAction(page, button, expect) {
  await page.getByRole('button', { name: button }).click()
  const dialog = page.getByRole('alertdialog')
  await dialog.waitFor()
  const text = await dialog.textContent()
  check(text.includes(expect), `transaction described in plain words before signing: "${text.slice(0, 140)}…"`)
  check(!/fee|stroop|XLM/i.test(text), 'no fees shown')
  await axe(page, `confirmation (${button})`)
  await dialog.getByRole('button', { name: 'Confirm and sign' }).click()
  await page.getByText('Done:').waitFor({ timeout: 60000 })
}

try {
  // Sign-in page.
  {
    const ctx = await browser.newContext({ bypassCSP: true })
    const page = await ctx.newPage()
    const resp = await page.goto(BASE_URL + '/')
    check((resp.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'CSP header on the page')
    await page.getByRole('heading', { name: 'Sign in to Medimint' }).waitFor()
    await axe(page, 'sign-in')
    await shots(page, 'signin')
    await page.getByLabel('E-mail address').fill(PATIENT_EMAIL)
    await page.getByLabel('Password').fill('wrong password!')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    check((await page.getByRole('alert').textContent()).includes('do not match'), 'wrong password refused')
    await ctx.close()
  }

  // The patient sees the study, with its frame.
  let { ctx, page } = await session(PATIENT_EMAIL)
  await page.getByRole('heading', { name: 'My studies' }).waitFor()
  const card = page.locator('.study').first()
  await card.waitFor()
  check((await card.textContent()).includes('On the network'), 'study listed as on the network')
  await axe(page, 'my studies')
  await shots(page, 'studies')
  await card.getByRole('heading').getByRole('link').click()
  const frame = page.locator('img.frame')
  await frame.waitFor()
  await page.waitForFunction(() => { const i = document.querySelector('img.frame'); return i && i.complete })
  check(await frame.evaluate((i) => i.naturalWidth > 0), 'study frame rendered (WADO-RS /rendered)')
  await axe(page, 'study detail')
  await shots(page, 'study')

  // Share with the clinician.
  await page.getByLabel("Clinician's e-mail address or Stellar account").fill(CLINICIAN_EMAIL)
  await chainAction(page, 'Share…', 'Let Dr Chen')
  await reloadUntil(page, () => page.getByRole('button', { name: /Revoke access for Dr Chen/ }).isVisible(), 'grant shows up')
  check(await page.getByRole('button', { name: /Revoke access for Dr Chen/ }).isVisible(), 'grant listed')
  for (const [path, name] of [['/activity', 'activity'], ['/requests', 'requests'], ['/notifications', 'notifications']]) {
    await page.getByRole('navigation').getByRole('link', { name: new RegExp('^' + name, 'i') }).click()
    await page.getByRole('heading', { level: 1 }).waitFor()
    check(page.url().endsWith(path), `navigated to ${path}`)
    await axe(page, name)
    await shots(page, name)
  }
  await ctx.close()

  // Passkey: added in the profile, then used to sign in.
  ;({ ctx, page } = await session(PATIENT_EMAIL))
  {
    const cdp = await ctx.newCDPSession(page)
    await cdp.send('WebAuthn.enable')
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
        isUserVerified: true, automaticPresenceSimulation: true },
    })
    await page.getByRole('navigation').getByRole('link', { name: 'Profile' }).click()
    await page.getByRole('heading', { name: 'Profile', level: 1 }).waitFor()
    await page.getByText('You have no passkeys yet.').waitFor()
    await axe(page, 'profile')
    await page.getByLabel('Name for the new passkey').fill('Test laptop')
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await page.getByRole('status').filter({ hasText: 'added' }).waitFor()
    check((await page.getByRole('status').textContent()).includes('Test laptop'), 'passkey added in the profile')
    await page.getByRole('button', { name: 'Remove passkey Test laptop' }).waitFor()
    const before = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
    check(before.credentials.length === 1 && before.credentials[0].isResidentCredential && before.credentials[0].rpId === new URL(BASE_URL).hostname,
      'one discoverable credential for the RP ID ' + new URL(BASE_URL).hostname)
    await axe(page, 'profile with a passkey')
    await shots(page, 'profile')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in to Medimint' }).waitFor()
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await page.getByRole('heading', { name: 'My studies' }).waitFor()
    check(true, 'signed in with the passkey')
    const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
    check(after.credentials[0].signCount > before.credentials[0].signCount, 'the authenticator signed the sign-in')
    await page.getByRole('navigation').getByRole('link', { name: /^Notifications/ }).click()
    await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor()
    await reloadUntil(page, () => page.getByText('A new imaging study is available').first().isVisible(), 'new-study notification shows up')
    check(await page.getByText('A new imaging study is available').first().isVisible(), 'new-study notification in the portal')
    await axe(page, 'notifications list')
  }
  await ctx.close()

  // The clinician sees it.
  ;({ ctx, page } = await session(CLINICIAN_EMAIL))
  await page.getByRole('link', { name: 'Shared with me' }).click()
  await page.getByRole('heading', { name: 'Shared with me' }).waitFor()
  const shared = page.locator('.card').first()
  await shared.waitFor()
  await axe(page, 'shared with me')
  await shots(page, 'shared')
  await shared.getByRole('heading').getByRole('link').click()
  await page.locator('img.frame').waitFor()
  await page.waitForFunction(() => { const i = document.querySelector('img.frame'); return i && i.complete })
  check(await page.locator('img.frame').evaluate((i) => i.naturalWidth > 0), 'clinician sees the frame')
  await axe(page, 'shared study')
  await ctx.close()

  // The patient revokes.
  ;({ ctx, page } = await session(PATIENT_EMAIL))
  await page.goto(BASE_URL + '/studies/' + STUDY_UID)
  await page.getByRole('button', { name: /Revoke access for Dr Chen/ }).waitFor()
  await chainAction(page, /Revoke access for Dr Chen/, 'Take back the access of Dr Chen')
  await reloadUntil(page, () => page.getByText('Only you.').isVisible(), 'revocation shows up')
  await ctx.close()

  // The clinician is refused.
  ;({ ctx, page } = await session(CLINICIAN_EMAIL))
  await page.goto(BASE_URL + '/shared/' + STUDY_UID)
  await page.getByRole('heading', { level: 1 }).waitFor()
  check((await page.getByRole('heading', { level: 1 }).textContent()) === 'Access denied', 'clinician denied after revocation')
  await axe(page, 'access denied')
  await shots(page, 'denied')
  await ctx.close()
} catch (e) {
  check(false, `flow completed: ${e.stack || e}`)
} finally {
  await browser.close()
}
console.log(`${passes} passed, ${failures} failed`)
process.exit(failures ? 1 : 0)
