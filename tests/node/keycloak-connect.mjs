// keycloak-connect (Keycloak's Node.js adapter, unmodified from npm) in an Express app on loopback, bearer-only,
// protecting routes by realm role and client role, given access tokens fedgate issued.
//   BASE=http://127.0.0.1:PORT REALM=corp CLIENT_ID=kc-app APP_PORT=… TOKENS='{"alice":"…","bob":"…"}' \
//     node keycloak-connect.mjs
// Prints one JSON line: the status each user's token got on each route; exits non-zero on failure.
import express from 'express';
import Keycloak from 'keycloak-connect';

const { BASE, REALM, CLIENT_ID, APP_PORT, TOKENS } = process.env;
if (!BASE || !REALM || !CLIENT_ID || !APP_PORT || !TOKENS) {
  throw new Error('BASE, REALM, CLIENT_ID, APP_PORT and TOKENS are required');
}
const keycloak = new Keycloak({}, {
  realm: REALM, 'auth-server-url': BASE, resource: CLIENT_ID, 'bearer-only': true, 'ssl-required': 'none',
  'confidential-port': 0, 'verify-token-audience': true,
});
const app = express();
app.use(keycloak.middleware());
const ok = (req, res) => res.send(`ok ${req.kauth.grant.access_token.content.preferred_username}`);
app.get('/realm-admin', keycloak.protect('realm:admin'), ok);
app.get('/realm-researcher', keycloak.protect('realm:researcher'), ok);
app.get('/client-editor', keycloak.protect('editor'), ok);
app.get('/client-viewer', keycloak.protect(`${CLIENT_ID}:viewer`), ok);
app.get('/client-nobody', keycloak.protect('nobody'), ok);
const server = await new Promise((resolve) => { const s = app.listen(Number(APP_PORT), '127.0.0.1', () => resolve(s)); });

const seen = {};
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
