// A certified OpenID Connect relying party (openid-client) signs in through fedgate when fedgate itself brokers the
// login to an upstream provider (node oidc-provider's development login page, filled over HTTP):
// discovery → authorize (with Keycloak's `kc_idp_hint`, or `idp`) → fedgate → the upstream's login → fedgate's
// callback → back to the app's callback → token (ID token validated by openid-client against fedgate's JWKS:
// signature, iss, aud, nonce, exp) → userinfo.
//   ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USER_NAME [HINT_PARAM=kc_idp_hint] [HINT] node oidc-rp-broker.mjs
// Prints one JSON line of what it saw (the ID token's claims, every page shown on the way); exits non-zero on the
// first failure.
import * as client from 'openid-client';

const env = process.env;
// One jar, as a browser keeps for 127.0.0.1 whatever the port (fedgate's and the upstream's cookie names differ).
const jar = new Map();
function remember(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i), value = pair.slice(i + 1);
    if (/max-age=0/i.test(c)) jar.delete(name); else jar.set(name, value);
  }
}
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
async function browse(url, init = {}) {
  const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookieHeader() } });
  remember(res);
  return res;
}
const expect = (ok, what) => { if (!ok) throw new Error(`expectation failed: ${what}`); };

const seen = { pages: [], hops: [] };
try {
  const config = await client.discovery(new URL(env.ISSUER), env.CLIENT_ID, { client_secret: env.CLIENT_SECRET }, undefined,
    { execute: [client.allowInsecureRequests] });
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: env.REDIRECT_URI, scope: 'openid profile email groups roles',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce,
  };
  if (env.HINT) params[env.HINT_PARAM || 'kc_idp_hint'] = env.HINT;
  let url = client.buildAuthorizationUrl(config, params).href, callback = null;
  for (let hop = 0; hop < 20 && !callback; hop++) {
    const res = await browse(url);
    const u = new URL(url);
    seen.hops.push(`${res.status} ${u.origin}${u.pathname}`);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url).href;
      if (next.startsWith(env.REDIRECT_URI)) callback = next; else url = next;
      continue;
    }
    const html = await res.text();
    seen.pages.push(`${res.status} ${u.origin}${u.pathname}`);
    // Only the upstream's login form is filled in; any other page (fedgate's own login page) is a failure.
    expect(res.status === 200 && u.pathname.startsWith('/interaction/'), `an unexpected page at ${url} (${res.status})`);
    const action = html.match(/<form[^>]*action="([^"]+)"/)[1].replaceAll('&amp;', '&');
    const fields = new URLSearchParams();
    for (const [, tag] of html.matchAll(/<input([^>]*)>/g)) {
      const name = tag.match(/name="([^"]+)"/)?.[1];
      if (!name) continue;
      const value = name === 'login' ? env.USER_NAME : name === 'password' ? 'any' : (tag.match(/value="([^"]*)"/)?.[1] ?? '');
      fields.set(name, value);
    }
    const post = await browse(new URL(action, url).href, { method: 'POST', body: fields, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(post.status >= 300 && post.status < 400, `the upstream's login POST answered ${post.status}`);
    url = new URL(post.headers.get('location'), url).href;
  }
  expect(callback, `reached the callback (hops: ${seen.hops.join(', ')})`);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  seen.id_token = tokens.claims();
  const info = await client.fetchUserInfo(config, tokens.access_token, seen.id_token.sub);
  seen.userinfo = { sub: info.sub, preferred_username: info.preferred_username, roles: info.roles };
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), cause: e.cause ? String(e.cause) : undefined, ...seen }));
  process.exitCode = 1;
}
