// Single logout in a real browser: Debian's chromium driven by playwright-core.
//   BASE=http://127.0.0.1:PORT USER_NAME=alice PASSWORD=… SPS=http://sp-a,http://sp-b START=fedgate|<an SP base>
//   [SP_LOGOUT_BINDING=post] [SP_LOGIN_QUERY=binding=post&passive=1] node browser-slo.mjs
// Logs in at fedgate, signs in to each pysaml2 SP (SP-initiated SSO: /login there, the auto-posted assertion back),
// then logs out at fedgate's page (START=fedgate) or at the SP given as START, and follows the browser to the end:
// the "Signing out" page with its iframes, its meta refresh, the final page. Prints one JSON line: the final URL
// and text, every request to an SP's /slo (from the iframes), any Content-Security-Policy refusal the browser
// reported, and the value of fedgate's session cookie after the login. Exits non-zero on the first unmet expectation.
import { chromium } from 'playwright-core';

const { BASE, USER_NAME, PASSWORD, SPS = '', START = 'fedgate', SP_LOGOUT_BINDING = '',
  SP_LOGIN_QUERY = '' } = process.env;
if (!BASE || !USER_NAME || !PASSWORD) throw new Error('BASE, USER_NAME and PASSWORD are required');
const sps = SPS.split(',').filter(Boolean);

const expect = (ok, what) => { if (!ok) throw new Error(`expectation failed: ${what}`); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const seen = { sp_sessions: [], slo_requests: [], csp: [] };
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) seen.csp.push(m.text()); });
  page.on('request', (r) => {
    if (sps.some((sp) => r.url().startsWith(`${sp}/slo`))) seen.slo_requests.push(`${r.method()} ${r.url().split('?')[0]}`);
  });
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Username').fill(USER_NAME);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/`);
  // The session cookie's value, so the test can ask fedgate afterwards whether that session really ended.
  seen.session = (await page.context().cookies()).find((c) => c.name === 'fedgate_session')?.value;

  for (const sp of sps) {
    await page.goto(`${sp}/login${SP_LOGIN_QUERY ? `?${SP_LOGIN_QUERY}` : ''}`);
    await page.waitForURL(`${sp}/acs`);
    seen.sp_sessions.push(JSON.parse(await page.locator('body').textContent()));
  }

  if (START === 'fedgate') {
    await page.goto(`${BASE}/logout`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/saml/slo/done', { timeout: 20000 });
  } else {
    await page.goto(`${START}/logout${SP_LOGOUT_BINDING === 'post' ? '?binding=post' : ''}`);
    await page.waitForURL(`${START}/slo`, { timeout: 20000 });
  }
  await page.waitForLoadState();
  seen.final_url = page.url();
  seen.final_text = (await page.locator('body').textContent())?.trim();
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
