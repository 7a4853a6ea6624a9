// keycloak-connect (Keycloak's Node.js adapter, unmodified from npm) in an Express app on loopback, bearer-only,
// protecting routes by realm role and client role, given access tokens fedgate issued.
//   BASE=http://127.0.0.1:PORT REALM=corp CLIENT_ID=kc-app APP_PORT=… TOKENS='{"alice":"…","bob":"…"}' \
//     [PUBLIC_KEY_FROM_REALM=1] node keycloak-connect.mjs
// With PUBLIC_KEY_FROM_REALM, the adapter is configured as old deployments were: with the `realm-public-key` read
// from Keycloak's realm information (`GET {BASE}/realms/{REALM}`), so it verifies tokens with that key and never
// fetches the JWKS; the script also verifies alice's token with Node's crypto and that key.
// Prints one JSON line: the status each user's token got on each route; exits non-zero on failure.
import express from 'express';
import Keycloak from 'keycloak-connect';
import crypto from 'node:crypto';

const { BASE, REALM, CLIENT_ID, APP_PORT, TOKENS } = process.env;
if (!BASE || !REALM || !CLIENT_ID || !APP_PORT || !TOKENS) {
  throw new Error('BASE, REALM, CLIENT_ID, APP_PORT and TOKENS are required');
}
const seen = {};
const adapterConfig = {
  realm: REALM, 'auth-server-url': BASE, resource: CLIENT_ID, 'bearer-only': true, 'ssl-required': 'none',
  'confidential-port': 0, 'verify-token-audience': true,
};
if (process.env.PUBLIC_KEY_FROM_REALM) {
  const res = await fetch(`${BASE}/realms/${REALM}`);
  const info = await res.json();
  seen.realm_info = { status: res.status, realm: info.realm, 'token-service': info['token-service'],
                      'account-service': info['account-service'], 'tokens-not-before': info['tokens-not-before'] };
  adapterConfig['realm-public-key'] = info.public_key;
  const [h, p, s] = JSON.parse(TOKENS).alice.split('.');
  const key = crypto.createPublicKey({ key: Buffer.from(info.public_key, 'base64'), format: 'der', type: 'spki' });
  seen.alice_verified_with_public_key = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
}
const keycloak = new Keycloak({}, adapterConfig);
const app = express();
app.use(keycloak.middleware());
const ok = (req, res) => res.send(`ok ${req.kauth.grant.access_token.content.preferred_username}`);
app.get('/realm-admin', keycloak.protect('realm:admin'), ok);
app.get('/realm-researcher', keycloak.protect('realm:researcher'), ok);
app.get('/client-editor', keycloak.protect('editor'), ok);
app.get('/client-viewer', keycloak.protect(`${CLIENT_ID}:viewer`), ok);
app.get('/client-nobody', keycloak.protect('nobody'), ok);
const server = await new Promise((resolve) => { const s = app.listen(Number(APP_PORT), '127.0.0.1', () => resolve(s)); });

try {
  const tokens = JSON.parse(TOKENS);
  for (const [user, token] of Object.entries({ ...tokens, forged: `${tokens.alice.slice(0, -4)}AAAA`, none: '' })) {
    seen[user] = {};
    for (const route of ['realm-admin', 'realm-researcher', 'client-editor', 'client-viewer', 'client-nobody']) {
      const headers = token ? { authorization: `Bearer ${token}` } : {};
      const res = await fetch(`http://127.0.0.1:${APP_PORT}/${route}`, { headers, redirect: 'manual' });
      seen[user][route] = res.status;
    }
  }
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  server.close();
}
