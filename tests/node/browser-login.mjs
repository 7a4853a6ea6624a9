// A real browser logs in through fedgate: Debian's chromium driven by playwright-core.
//   BASE=http://127.0.0.1:PORT USER_NAME=alice PASSWORD=… SHOT_DIR=/tmp/x node browser-login.mjs
// Opens a protected page, lands on the login form, tries a wrong password, then the right one, arrives back,
// and signs out. Prints one JSON line of what it saw; exits non-zero on the first unmet expectation.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const { BASE, USER_NAME, PASSWORD, SHOT_DIR = '/tmp' } = process.env;
if (!BASE || !USER_NAME || !PASSWORD) throw new Error('BASE, USER_NAME and PASSWORD are required');
mkdirSync(SHOT_DIR, { recursive: true });

const expect = (ok, what) => { if (!ok) throw new Error(`expectation failed: ${what}`); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  page.setDefaultTimeout(15000);
  await page.goto(`${BASE}/`);
  seen.login_url = page.url();
  expect(new URL(page.url()).pathname === '/login', `redirected to /login, got ${page.url()}`);
  expect(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'Sign in heading visible');
  await page.screenshot({ path: `${SHOT_DIR}/login.png` });

  await page.getByLabel('Username').fill(USER_NAME);
  await page.getByLabel('Password').fill('definitely-wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  seen.error = (await page.getByRole('alert').textContent())?.trim();
  expect(seen.error === 'Invalid username or password.', `error shown, got ${seen.error}`);
  expect(await page.getByLabel('Username').inputValue() === USER_NAME, 'username kept after failure');
  await page.screenshot({ path: `${SHOT_DIR}/login-error.png` });

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/`);
  seen.account_username = (await page.locator('#username').textContent())?.trim();
  seen.roles = (await page.locator('#roles').textContent())?.trim();
  expect(seen.account_username === USER_NAME, `account page shows ${USER_NAME}`);
  await page.screenshot({ path: `${SHOT_DIR}/account.png` });
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'fedgate_session');
  seen.cookie = session && { httpOnly: session.httpOnly, sameSite: session.sameSite };

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
  seen.logged_out = (await page.locator('main p').first().textContent())?.trim();
  expect(seen.logged_out === 'You have been signed out.', `signed out, got ${seen.logged_out}`);
  await page.goto(`${BASE}/`);
  expect(new URL(page.url()).pathname === '/login', 'after logout the account page asks to log in again');
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
