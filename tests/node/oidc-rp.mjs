// A certified OpenID Connect relying party (openid-client) signs in through fedgate with the code flow + PKCE:
// discovery → authorize → login form (filled over HTTP) → callback → token (ID token validated by openid-client
// against the JWKS: signature, iss, aud, nonce, exp) → userinfo → refresh → RP-initiated logout.
//   ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT USER_NAME PASSWORD ALG node oidc-rp.mjs
// Prints one JSON line of what it saw; exits non-zero on the first failure.
import * as client from 'openid-client';

const env = process.env;
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

const seen = {};
try {
  const metadata = { client_secret: env.CLIENT_SECRET, id_token_signed_response_alg: env.ALG || 'RS256' };
  const config = await client.discovery(new URL(env.ISSUER), env.CLIENT_ID, metadata, undefined,
    { execute: [client.allowInsecureRequests] });
  seen.issuer = config.serverMetadata().issuer;

  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: env.REDIRECT_URI, scope: 'openid profile email groups roles offline_access',
    code_challenge: challenge, code_challenge_method: 'S256', state, nonce,
  });

  // Follow redirects like a browser until the app's callback; log in when the form shows up.
  let url = authUrl.href, callback = null, loggedIn = false;
  for (let hop = 0; hop < 10 && !callback; hop++) {
    const res = await browse(url);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url).href;
      if (next.startsWith(env.REDIRECT_URI)) callback = next; else url = next;
      continue;
    }
    const html = await res.text();
    expect(res.status === 200 && html.includes('name="csrf"') && !loggedIn, `login form at ${url} (status ${res.status})`);
    seen.login_page_names_app = html.includes('Demo app') || html.includes(env.CLIENT_ID);
    const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];
    const rd = html.match(/name="rd" value="([^"]*)"/)[1].replaceAll('&amp;', '&');
    const body = new URLSearchParams({ username: env.USER_NAME, password: env.PASSWORD, csrf, rd });
    const post = await browse(new URL('/login', url).href, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(post.status === 303, `login POST answered ${post.status}`);
    loggedIn = true;
    url = new URL(post.headers.get('location'), url).href;
  }
  expect(callback, 'reached the callback');

  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  seen.id_token = { sub: claims.sub, aud: claims.aud, preferred_username: claims.preferred_username, email: claims.email,
                    groups: claims.groups, roles: claims.roles, alg: JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg };
  seen.token_type = tokens.token_type;
  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  seen.userinfo = { sub: info.sub, name: info.name, email: info.email, roles: info.roles, groups: info.groups };
  seen.access_token_groups = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url')).groups;

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  seen.refresh = { rotated: refreshed.refresh_token !== tokens.refresh_token, id_token_sub: refreshed.claims()?.sub };
  // The old refresh token was rotated away: using it again is reuse, refused.
  try { await client.refreshTokenGrant(config, tokens.refresh_token); seen.reuse = 'accepted'; }
  catch (e) { seen.reuse = e.error || String(e); }

  const end = client.buildEndSessionUrl(config, { id_token_hint: refreshed.id_token || tokens.id_token,
                                                  post_logout_redirect_uri: env.POST_LOGOUT, state: 'bye' });
  const out = await browse(end.href);
  seen.logout = { status: out.status, location: out.headers.get('location') };
  const after = await browse(new URL('/', env.ISSUER).href);
  seen.after_logout_status = after.status;
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), cause: e.cause ? String(e.cause) : undefined, ...seen }));
  process.exitCode = 1;
}
