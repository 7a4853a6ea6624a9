// Full code + PKCE logins/s against the peer provider (oidc-provider's development login page), with CONC concurrent
// fresh browsers for SECS seconds: /auth → login page → POST login → resume → callback code → POST /token.
//   node codeflow-peer.mjs ISSUER CONC SECS    → prints {"logins":…, "failed":…, "rate":…}
import { createHash, randomBytes } from 'node:crypto';

const [issuer, conc = '8', secs = '8'] = process.argv.slice(2);
const REDIRECT = 'http://127.0.0.1:9/cb';
const basic = Buffer.from('web:web-secret-0123456789').toString('base64');

async function login(n) {
  const jar = new Map();
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const i = kv.indexOf('=');
      jar.set(kv.slice(0, i), kv.slice(i + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const go = async (url, init = {}) => {
    const res = await fetch(new URL(url, issuer), { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookie() } });
    keep(res);
    return res;
  };
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({ client_id: 'web', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid profile',
    code_challenge: challenge, code_challenge_method: 'S256', state: 's', nonce: 'n' });
  let r = await go(`/auth?${q}`);
  const interaction = r.headers.get('location');
  await (await go(interaction)).text();
  r = await go(interaction, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt: 'login', login: `user${n}`, password: 'x' }).toString() });
  r = await go(r.headers.get('location'));
  const loc = r.headers.get('location') || '';
  if (!loc.startsWith(REDIRECT)) throw new Error(`no code: ${r.status} ${loc}`);
  const code = new URL(loc).searchParams.get('code');
  const t = await fetch(new URL('/token', issuer), { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }).toString() });
  if (t.status !== 200) throw new Error(`token ${t.status} ${await t.text()}`);
  await t.json();
}

const end = Date.now() + Number(secs) * 1000;
let ok = 0, failed = 0, n = 0;
const start = Date.now();
await Promise.all(Array.from({ length: Number(conc) }, async () => {
  while (Date.now() < end) {
    try { await login(n++); ok++; } catch { failed++; }
  }
}));
console.log(JSON.stringify({ logins: ok, failed, rate: ok / ((Date.now() - start) / 1000) }));
