// End-to-end test of the portal in Chromium (playwright-core driving
// Debian's /usr/bin/chromium). Started by portal/e2e_test.go, which runs
// the real `medimint serve` (devnet, Postgres, a study pushed by storescu
// and minted) and passes BASE_URL, STUDY_UID, PATIENT_EMAIL,
// CLINICIAN_EMAIL, PASSWORD, ADMIN_EMAIL, ADMIN_PASSWORD and
// ACCESS_COOKIE (the session cookie holding the access token).
//
// Flow: the issuer admin sees the study in the ingest table; the patient
// signs in, sees their study with its thumbnail and frame, shares it with
// the clinician (another organisation; the transaction described in plain
// words before signing); the patient adds a passkey in their profile (a
// CDP virtual authenticator: CTAP2, internal, resident keys, user
// verified), signs out and in with it, and finds the new-study
// notification; the clinician signs in and opens the study (its frame
// from DICOMweb); the patient revokes; the clinician's view fails.
// At two checkpoints ("granted", "revoked") it prints "@@<step> <the
// clinician's access token>" and waits for the Go test's "ok" on stdin:
// the test checks WADO-RS over HTTP with that token.
// axe-core must find no violations on any page; screenshots at 390 and
// 1280 px wide go to e2e/artifacts/.
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'

const here = dirname(fileURLToPath(import.meta.url))
const artifacts = join(here, 'artifacts')
mkdirSync(artifacts, { recursive: true })
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

const env = process.env
const { BASE_URL, STUDY_UID, PATIENT_EMAIL, CLINICIAN_EMAIL, PASSWORD, ADMIN_EMAIL, ADMIN_PASSWORD, ACCESS_COOKIE } = env
for (const k of ['BASE_URL', 'STUDY_UID', 'PATIENT_EMAIL', 'CLINICIAN_EMAIL', 'PASSWORD', 'ADMIN_EMAIL', 'ADMIN_PASSWORD', 'ACCESS_COOKIE']) {
  if (!env[k]) throw new Error(`${k} is not set`)
}

// checkpoint hands the Go test a step and the clinician's access token
// and waits for its verdict on stdin.
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
async function checkpoint(step, ctx) {
  const token = (await ctx.cookies(BASE_URL)).find((c) => c.name === ACCESS_COOKIE)?.value
  check(!!token, `the clinician's session holds an access token (${step})`)
  console.log(`@@${step} ${token}`)
  const { value, done } = await stdin.next()
  check(!done && value === 'ok', `Go test's HTTP check at ${step}: ${done ? 'no answer' : value}`)
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

async function session(email, password = PASSWORD) {
  // bypassCSP lets axe be injected; the app itself runs under the CSP.
  const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => check(false, `no page error: ${e.message}`))
  await page.goto(BASE_URL + '/')
  await page.getByLabel('E-mail address').fill(email)
  await page.getByLabel('Password').fill(password)
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

  // The issuer admin (printed by the first start) sees the ingest.
  let { ctx, page } = await session(ADMIN_EMAIL, ADMIN_PASSWORD)
  await page.getByRole('navigation').getByRole('link', { name: 'Organisation' }).click()
  await page.getByRole('heading', { name: 'Organisation', level: 1 }).waitFor()
  await page.getByRole('cell', { name: 'CT' }).first().waitFor()
  check(true, 'admin sees the pushed CT study in the ingest table')
  await axe(page, 'organisation')
  await shots(page, 'organisation')
  await ctx.close()

  // The patient sees the study, with its frame.
  ;({ ctx, page } = await session(PATIENT_EMAIL))
  await page.getByRole('heading', { name: 'My studies' }).waitFor()
  const card = page.locator('.study').first()
  await card.waitFor()
  check((await card.textContent()).includes('On the network'), 'study listed as on the network')
  const thumb = card.locator('img')
  await thumb.waitFor()
  check((await thumb.getAttribute('src')).includes('/dicom-web/studies/' + STUDY_UID + '/'), 'thumbnail is the study\'s WADO-RS /rendered frame')
  check((await thumb.getAttribute('src')).endsWith('/rendered'), 'thumbnail from /rendered')
  await page.waitForFunction(() => { const i = document.querySelector('.study img'); return i && i.complete }, null, { timeout: 20000 })
  check(await thumb.evaluate((i) => i.naturalWidth > 0), 'thumbnail loaded')
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

  // The clinician, of another organisation, signs in and opens it: the
  // frame comes from DICOMweb with their session.
  ;({ ctx, page } = await session(CLINICIAN_EMAIL))
  const dicomweb = []
  page.on('response', (r) => { if (r.url().includes('/dicom-web/')) dicomweb.push([r.url(), r.status()]) })
  await page.getByRole('navigation').getByRole('link', { name: 'Shared with me' }).click()
  await page.getByRole('heading', { name: 'Shared with me' }).waitFor()
  await reloadUntil(page, () => page.locator('.card').first().isVisible(), 'shared study shows up for the clinician')
  const shared = page.locator('.card').first()
  await axe(page, 'shared with me')
  await shots(page, 'shared')
  await shared.getByRole('heading').getByRole('link').click()
  await page.locator('img.frame').waitFor()
  await page.waitForFunction(() => { const i = document.querySelector('img.frame'); return i && i.complete }, null, { timeout: 20000 })
  check(await page.locator('img.frame').evaluate((i) => i.naturalWidth > 0), 'clinician sees the frame')
  const frameURL = await page.locator('img.frame').evaluate((i) => i.src)
  check(dicomweb.some(([u, st]) => u === frameURL && st === 200), `the frame came from DICOMweb (200): ${frameURL}`)
  await axe(page, 'shared study')
  await shots(page, 'shared-study')
  await checkpoint('granted', ctx)
  const clinician = { ctx, page, frameURL }

  // The patient revokes.
  ;({ ctx, page } = await session(PATIENT_EMAIL))
  await page.goto(BASE_URL + '/studies/' + STUDY_UID)
  await page.getByRole('button', { name: /Revoke access for Dr Chen/ }).waitFor()
  await chainAction(page, /Revoke access for Dr Chen/, 'Take back the access of Dr Chen')
  await reloadUntil(page, () => page.getByText('Only you.').isVisible(), 'revocation shows up')
  await ctx.close()

  // The clinician's view fails, in the page and for the frame itself.
  ;({ ctx, page } = clinician)
  await page.goto(BASE_URL + '/shared/' + STUDY_UID)
  await page.getByRole('heading', { level: 1 }).waitFor()
  await reloadUntil(page, async () => (await page.getByRole('heading', { level: 1 }).textContent()) === 'Access denied',
    'clinician denied after revocation')
  check((await page.getByRole('heading', { level: 1 }).textContent()) === 'Access denied', 'clinician denied after revocation')
  check((await page.request.get(clinician.frameURL)).status() === 404, 'the frame URL answers 404 to the clinician now')
  await axe(page, 'access denied')
  await shots(page, 'denied')
  await checkpoint('revoked', ctx)
  await ctx.close()
} catch (e) {
  check(false, `flow completed: ${e.stack || e}`)
} finally {
  await browser.close()
  stdin.return?.()
}
console.log(`${passes} passed, ${failures} failed`)
process.exit(failures ? 1 : 0)
