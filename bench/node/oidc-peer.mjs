// Peer OpenID Provider for scripts/bench: node oidc-provider (in-memory adapter) on 127.0.0.1:$PORT, issuing JWT
// access tokens signed with $ALG for the client_credentials grant (client "svc" / "svc-secret-0123456789"), and
// code + PKCE logins through its development login page (client "web" / "web-secret-0123456789",
// redirect http://127.0.0.1:9/cb; consent granted for this first-party client, as fedgate does). With
// BROKER_REDIRECT=http://127.0.0.1:GW/login/NAME/callback, also the client "fedgate" / "fedgate-secret-0123456789"
// for a fedgate that brokers its logins to this provider ([[upstream.oidc]]), measured in the same run.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
const ALG = process.env.ALG || 'RS256';
const RESOURCE = 'https://api.example.org';
const spec = { RS256: ['rsa', { modulusLength: 2048 }], ES256: ['ec', { namedCurve: 'P-256' }], EdDSA: ['ed25519', {}] };
const jwk = (alg) => ({ ...generateKeyPairSync(...spec[alg]).privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: alg });
// oidc-provider always needs an RS256 key (its default ID token algorithm), plus the one measured.
const keys = ALG === 'RS256' ? [jwk('RS256')] : [jwk('RS256'), jwk(ALG)];

const provider = new Provider(`http://127.0.0.1:${PORT}`, {
  clients: [{ client_id: 'svc', client_secret: 'svc-secret-0123456789', grant_types: ['client_credentials'],
              response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' },
            { client_id: 'web', client_secret: 'web-secret-0123456789', grant_types: ['authorization_code'],
              response_types: ['code'], redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'client_secret_basic' },
            ...(process.env.BROKER_REDIRECT ? [{ client_id: 'fedgate', client_secret: 'fedgate-secret-0123456789',
              grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [process.env.BROKER_REDIRECT],
              token_endpoint_auth_method: 'client_secret_basic' }] : [])],
  pkce: { required: () => true },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, preferred_username: sub }) }),
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile');
    await grant.save();
    return grant;
  },
  jwks: { keys },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // fedgate, brokering, calls userinfo with its access token: an opaque one for this provider, not a JWT
      // for the API.
      defaultResource: async (_ctx, client) => (client.clientId === 'fedgate' ? undefined : RESOURCE),
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({ scope: 'api:read', audience: RESOURCE, accessTokenTTL: 600,
                                            accessTokenFormat: 'jwt', jwt: { sign: { alg: ALG } } }),
    },
  },
});
provider.listen(PORT, '127.0.0.1');
