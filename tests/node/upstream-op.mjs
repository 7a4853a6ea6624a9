// A real upstream OpenID Connect provider for fedgate's brokering tests: panva/node-oidc-provider (in-memory),
// on 127.0.0.1 only. Nobody here wrote it; fedgate must interoperate with it as it is.
//   PORT=… REDIRECT_URI=http://127.0.0.1:GW/login/corp/callback [POST_LOGOUT=…] node upstream-op.mjs
// Client: fedgate / fedgate-secret (client_secret_basic, code + PKCE S256). Login: devInteractions (the form at
// /interaction/{uid}; any password); consent is granted without a screen (a first-party client).
// Accounts: the login name is the account; each has an e-mail at corp.example, a name and a `groups` claim:
//   alice → [ops, staff]; carol → [staff]; twin → [staff] (e-mail twin@corp.example); anyone else → [].
//   mallory typed bob's address at sign-up and never confirmed it: e-mail bob@corp.example, email_verified false.
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
if (!PORT || !process.env.REDIRECT_URI) throw new Error('PORT and REDIRECT_URI env required');
const ISSUER = `http://127.0.0.1:${PORT}`;
const GROUPS = { alice: ['ops', 'staff'], carol: ['staff'], twin: ['staff'] };
const UNVERIFIED = { mallory: 'bob@corp.example' };

const configuration = {
  clients: [{
    client_id: 'fedgate', client_secret: 'fedgate-secret',
    grant_types: ['authorization_code'], response_types: ['code'],
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: process.env.POST_LOGOUT ? [process.env.POST_LOGOUT] : [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
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
      sub, email: UNVERIFIED[sub] || `${sub}@corp.example`, email_verified: !UNVERIFIED[sub],
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
