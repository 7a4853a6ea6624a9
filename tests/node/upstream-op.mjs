// A real upstream OpenID Connect provider for fedgate's brokering tests: panva/node-oidc-provider (in-memory),
// on 127.0.0.1 only. Nobody here wrote it; fedgate must interoperate with it as it is.
//   PORT=… REDIRECT_URI=http://127.0.0.1:GW/login/corp/callback [POST_LOGOUT=…] node upstream-op.mjs
// Client: fedgate / fedgate-secret (client_secret_basic, code + PKCE S256; PUBLIC_CLIENT=1: no secret). Login: devInteractions (the form at
// /interaction/{uid}; any password); consent is granted without a screen (a first-party client).
// Accounts: the login name is the account; each has an e-mail at corp.example, a name and a `groups` claim:
//   alice → [ops, staff]; carol → [staff]; twin → [staff] (e-mail twin@corp.example); eve → [ops] with the e-mail
//   eve@elsewhere.example; anyone else → [].
//   mallory typed bob's address at sign-up and never confirmed it: e-mail bob@corp.example, email_verified false.
// USERINFO_ALG=ES256 (or another JWS algorithm): the client registers `userinfo_signed_response_alg`, so userinfo
// answers are signed JWTs (`application/jwt`), not JSON; the provider then has an RS256 and an ES256 key.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
if (!PORT || !process.env.REDIRECT_URI) throw new Error('PORT and REDIRECT_URI env required');
const ISSUER = `http://127.0.0.1:${PORT}`;
const GROUPS = { alice: ['ops', 'staff'], carol: ['staff'], twin: ['staff'], eve: ['ops'] };
const DOMAIN = { eve: 'elsewhere.example' };
const UNVERIFIED = { mallory: 'bob@corp.example' };
const USERINFO_ALG = process.env.USERINFO_ALG;
const jwk = (kind, opts, alg) => ({ ...generateKeyPairSync(kind, opts).privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: alg });

const configuration = {
  clients: [{
    client_id: 'fedgate',
    grant_types: ['authorization_code'], response_types: ['code'],
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: process.env.POST_LOGOUT ? [process.env.POST_LOGOUT] : [],
    // PUBLIC_CLIENT=1: no secret, PKCE only (a public client, as some set-ups register fedgate).
    ...(process.env.PUBLIC_CLIENT ? { token_endpoint_auth_method: 'none' } : { client_secret: 'fedgate-secret', token_endpoint_auth_method: 'client_secret_basic' }),
    ...(USERINFO_ALG ? { userinfo_signed_response_alg: USERINFO_ALG } : {}),
  }],
  ...(USERINFO_ALG ? { jwks: { keys: [jwk('rsa', { modulusLength: 2048 }, 'RS256'), jwk('ec', { namedCurve: 'P-256' }, 'ES256')] } } : {}),
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true }, jwtUserinfo: { enabled: Boolean(USERINFO_ALG) } },
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    grant.addOIDCClaims(['groups']);
    await grant.save();
    return grant;
  },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub, email: UNVERIFIED[sub] || `${sub}@${DOMAIN[sub] || 'corp.example'}`, email_verified: !UNVERIFIED[sub],
      name: `User ${sub}`, preferred_username: sub,
      groups: GROUPS[sub] || [],
    }),
  }),
  renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
const server = provider.listen(PORT, '127.0.0.1', () => console.log(`ready ${ISSUER} pid=${process.pid}`));
const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
