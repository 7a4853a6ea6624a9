// A real browser signs in through an upstream OpenID Connect provider (node oidc-provider) via fedgate: Debian's
// chromium driven by playwright-core.
//   BASE=http://127.0.0.1:PORT USER_NAME=alice LABEL="Corp SSO" SHOT_DIR=/tmp/x node browser-upstream.mjs
// Opens fedgate's login page, clicks the provider's button, signs in on the provider's own pages (login, and
// consent if it asks), lands on fedgate's account page. Prints one JSON line; exits non-zero on the first unmet
// expectation.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const { BASE, USER_NAME, LABEL, SHOT_DIR = '/tmp' } = process.env;
if (!BASE || !USER_NAME || !LABEL) throw new Error('BASE, USER_NAME and LABEL are required');
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
  await page.goto(`${BASE}/login`);
  expect(await page.getByLabel('Password').isVisible(), 'the password form is there');
  await page.getByRole('link', { name: LABEL }).click();
  await page.waitForURL((u) => u.pathname.startsWith('/interaction/'));
  seen.provider_page = new URL(page.url()).origin;
  expect(seen.provider_page !== new URL(BASE).origin, 'on the provider\'s own site');
  await page.screenshot({ path: `${SHOT_DIR}/upstream-login.png` });
  await page.locator('input[name=login]').fill(USER_NAME);
  await page.locator('input[name=password]').fill('any');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  for (let i = 0; i < 3 && !page.url().startsWith(`${BASE}/`); i += 1) {
    await page.waitForLoadState();
    if (page.url().startsWith(`${BASE}/`)) break;
    // A consent screen, if the provider shows one.
    const button = page.getByRole('button').first();
    if (await button.count()) await button.click();
  }
  await page.waitForURL(`${BASE}/`);
  seen.account_username = (await page.locator('#username').textContent())?.trim();
  seen.roles = (await page.locator('#roles').textContent())?.trim();
  expect(seen.account_username === USER_NAME, `account page shows ${USER_NAME}, got ${seen.account_username}`);
  await page.screenshot({ path: `${SHOT_DIR}/upstream-account.png` });
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
