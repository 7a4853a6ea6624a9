// keycloak-js (the Keycloak JavaScript adapter, unmodified from npm) in a real Chromium against fedgate in Keycloak
// realm mode. A small static server on loopback serves the app page and keycloak-js itself.
//   BASE=http://127.0.0.1:PORT REALM=corp CLIENT_ID=spa-kc APP_PORT=… USER_NAME=alice PASSWORD=… \
//     node keycloak-js.mjs
// init({onLoad: 'login-required', pkceMethod: 'S256'}) → fedgate's login page → back in the app authenticated →
// updateToken() refreshes → init({onLoad: 'check-sso'}) on another page finds the session without a login page →
// logout() ends the fedgate session → check-sso now finds none. Prints one JSON line; exits non-zero on failure.
// With MODE=iframe instead: sign in, then init({onLoad: 'check-sso', checkLoginIframe: true,
// checkLoginIframeInterval: 1}) on /iframe → the session
// stays "unchanged" → a logout in another tab of the same browser → onAuthLogout fires in the first; also what
// the session-status iframe answers a page of another origin, and whether KEYCLOAK_SESSION signs anyone in.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';

const { BASE, REALM, CLIENT_ID, APP_PORT, USER_NAME, PASSWORD } = process.env;
if (!BASE || !REALM || !CLIENT_ID || !APP_PORT || !USER_NAME || !PASSWORD) {
  throw new Error('BASE, REALM, CLIENT_ID, APP_PORT, USER_NAME and PASSWORD are required');
}
const kcLib = fileURLToPath(new URL('node_modules/keycloak-js/lib/keycloak.js', import.meta.url));
const APP = `http://127.0.0.1:${APP_PORT}`;

// The app: keycloak-js with the realm URL only (no discovery document), as a Keycloak SPA is configured.
const page = (onLoad, iframe) => `<!doctype html><html><head><meta charset="utf-8"><title>kc app</title></head><body>
<pre id="out">starting</pre>
<script type="module">
import Keycloak from '/keycloak.js';
const kc = new Keycloak({ url: ${JSON.stringify(BASE)}, realm: ${JSON.stringify(REALM)}, clientId: ${JSON.stringify(CLIENT_ID)} });
window.kc = kc;
kc.onAuthLogout = () => { window.loggedOut = (window.loggedOut || 0) + 1; };
try {
  const options = ${iframe ? "{ checkLoginIframe: true, checkLoginIframeInterval: 1 }" : '{}'};
  const authenticated = await kc.init({ onLoad: '${onLoad}', pkceMethod: 'S256', ...options });
  window.kcResult = { authenticated, responseMode: kc.responseMode };
} catch (e) {
  window.kcResult = { error: String(e && (e.error || e.message || e)) };
}
document.getElementById('out').textContent = JSON.stringify(window.kcResult);
</script></body></html>`;
const server = createServer((req, res) => {
  const path = new URL(req.url, APP).pathname;
  if (path === '/keycloak.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(readFileSync(kcLib));
  } else if (path === '/ask') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(askPage());
  } else if (path === '/' || path === '/sso' || path === '/bye' || path === '/iframe') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(path === '/bye' ? '<!doctype html><p id="bye">bye</p>'
      : page(path === '/sso' || path === '/iframe' ? 'check-sso' : 'login-required', path === '/iframe'));
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(Number(APP_PORT), '127.0.0.1', ok));
// A page of another origin (not a registered redirect URI) that asks the session-status iframe anyway.
const STATUS_IFRAME = `${BASE}/realms/${REALM}/protocol/openid-connect/login-status-iframe.html`;
const askPage = () => `<!doctype html><body><script>
const client = new URL(location.href).searchParams.get('client');
const f = document.createElement('iframe');
f.src = ${JSON.stringify(STATUS_IFRAME)};
addEventListener('message', (e) => { if (e.source === f.contentWindow) window.answer = e.data; });
f.onload = () => f.contentWindow.postMessage(client + ' ' + new URL(location.href).searchParams.get('sid'), new URL(f.src).origin);
document.body.appendChild(f);
</script></body>`;
const foreign = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(askPage());
});
await new Promise((ok) => foreign.listen(0, '127.0.0.1', ok));
const FOREIGN = `http://127.0.0.1:${foreign.address().port}`;

const expect = (ok, what) => { if (!ok) throw new Error(`expectation failed: ${what}`); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const seen = { console: [] };
const b64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
async function iframeMode() {
  const context = await browser.newContext();
  const tab = await context.newPage();
  tab.setDefaultTimeout(20000);
  // Sign in through the login-required page, then open the check-sso page that watches the session.
  await tab.goto(`${APP}/`);
  await tab.waitForURL((u) => u.pathname === '/login');
  await tab.getByLabel('Username').fill(USER_NAME);
  await tab.getByLabel('Password').fill(PASSWORD);
  await tab.getByRole('button', { name: 'Sign in' }).click();
  await tab.waitForURL((u) => u.origin === APP);
  await tab.waitForFunction(() => window.kcResult !== undefined);
  await tab.goto(`${APP}/iframe`);
  await tab.waitForFunction(() => window.kcResult !== undefined && location.pathname === '/iframe');
  seen.init = await tab.evaluate(() => window.kcResult);
  expect(seen.init.authenticated === true, `authenticated: ${JSON.stringify(seen.init)}`);
  const sid = await tab.evaluate(() => window.kc.sessionId);
  // The cookie the iframe reads holds a hash of the token's sid, not the session.
  const cookies = await context.cookies([`${BASE}/`, `${BASE}/realms/${REALM}/`]);
  const kcCookie = cookies.find((c) => c.name === 'KEYCLOAK_SESSION');
  const session = cookies.find((c) => c.httpOnly && c.path === '/');
  seen.cookie = {
    present: !!kcCookie, http_only: kcCookie?.httpOnly, path: kcCookie?.path,
    holds_sid_hash: !!kcCookie && kcCookie.value.split('.').includes(b64url(crypto.createHash('sha256').update(sid).digest())),
    holds_sid: !!kcCookie && kcCookie.value.includes(sid),
    equals_session: !!kcCookie && !!session && kcCookie.value.includes(session.value),
  };
  // Replaying it as the session cookie signs nobody in.
  const replay = await fetch(`${BASE}/`, { redirect: 'manual', headers: { cookie: `${session.name}=${kcCookie.value}` } });
  seen.replay = { status: replay.status, location: replay.headers.get('location') };
  // Several checks pass while the session lives.
  await tab.waitForTimeout(2500);
  seen.before_logout = await tab.evaluate(() => ({ logged_out: window.loggedOut || 0, authenticated: window.kc.authenticated }));
  // Another page of another origin asks the iframe: error, whatever it claims.
  const other = await context.newPage();
  await other.goto(`${FOREIGN}/?client=${CLIENT_ID}&sid=${encodeURIComponent(sid)}`);
  await other.waitForFunction(() => window.answer !== undefined);
  seen.foreign_origin_answer = await other.evaluate(() => window.answer);
  // The app's own origin asking about another client (not registered for this origin): error too.
  await other.goto(`${APP}/ask?client=kc-app&sid=${encodeURIComponent(sid)}`);
  await other.waitForFunction(() => window.answer !== undefined);
  seen.foreign_client_answer = await other.evaluate(() => window.answer);
  // Sign out in another tab of the same browser.
  await other.goto(`${BASE}/realms/${REALM}/protocol/openid-connect/logout`);
  await other.getByRole('button', { name: 'Sign out' }).click();
  await other.waitForLoadState();
  await tab.waitForFunction(() => (window.loggedOut || 0) > 0, null, { timeout: 10000 }).catch(() => {});
  seen.after_logout = await tab.evaluate(() => ({ logged_out: window.loggedOut || 0, authenticated: window.kc.authenticated }));
}
try {
  if (process.env.MODE === 'iframe') {
    await iframeMode();
    console.log(JSON.stringify({ ok: true, ...seen }));
    await browser.close();
    server.close();
    foreign.close();
    process.exit(0);
  }
  const tab = await browser.newPage();
  tab.setDefaultTimeout(20000);
  tab.on('console', (m) => { if (m.type() === 'error') seen.console.push(m.text()); });
  await tab.goto(`${APP}/`);
  await tab.waitForURL((u) => u.pathname === '/login');
  seen.login_url = tab.url();
  await tab.getByLabel('Username').fill(USER_NAME);
  await tab.getByLabel('Password').fill(PASSWORD);
  await tab.getByRole('button', { name: 'Sign in' }).click();
  await tab.waitForURL((u) => u.origin === APP);
  await tab.waitForFunction(() => window.kcResult !== undefined);
  seen.init = await tab.evaluate(() => window.kcResult);
  expect(seen.init.authenticated === true, `authenticated: ${JSON.stringify(seen.init)}`);
  seen.callback_url = tab.url();
  const parsed = await tab.evaluate(() => ({
    realm_roles: window.kc.tokenParsed.realm_access?.roles,
    resource_access: window.kc.tokenParsed.resource_access,
    preferred_username: window.kc.tokenParsed.preferred_username,
    typ: window.kc.tokenParsed.typ,
    iss: window.kc.tokenParsed.iss,
    id_typ: window.kc.idTokenParsed?.typ,
    has_role_admin: window.kc.hasRealmRole('admin'),
    session_id: window.kc.sessionId,
    token: window.kc.token,
    refresh: window.kc.refreshToken,
  }));
  seen.token = { ...parsed, token: undefined, refresh: undefined };
  expect(parsed.typ === 'Bearer', 'access token typ Bearer');

  const refreshed = await tab.evaluate(async () => {
    const before = window.kc.token;
    const did = await window.kc.updateToken(-1);
    return { did, changed: window.kc.token !== before, roles: window.kc.tokenParsed.realm_access?.roles };
  });
  seen.refresh = refreshed;
  expect(refreshed.did === true && refreshed.changed, `updateToken refreshed: ${JSON.stringify(refreshed)}`);

  const checkSso = async () => {
    await tab.goto(`${APP}/sso`);
    await tab.waitForFunction(() => window.kcResult !== undefined && location.pathname === '/sso');
    return await tab.evaluate(() => ({ ...window.kcResult, roles: window.kc.tokenParsed?.realm_access?.roles }));
  };
  seen.check_sso = await checkSso();
  expect(seen.check_sso.authenticated === true, `check-sso finds the session: ${JSON.stringify(seen.check_sso)}`);

  await tab.evaluate(() => window.kc.logout({ redirectUri: location.origin + '/bye' }));
  await tab.waitForURL(`${APP}/bye`);
  seen.after_logout_url = tab.url();
  // The fedgate session is gone: the account page asks for a login again.
  await tab.goto(`${BASE}/`);
  seen.account_after_logout = new URL(tab.url()).pathname;
  seen.check_sso_after_logout = await checkSso();
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
  foreign.close();
}
