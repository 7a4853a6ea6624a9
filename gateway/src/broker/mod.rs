//! Signing users in through upstream OpenID Connect providers (`[[upstream.oidc]]`, identity brokering), with the
//! `openidconnect` crate as the client: discovery, PKCE S256, nonce, state, ID-token verification against the
//! provider's JWKS (fetched again once on an unknown `kid`), userinfo. The routes live in `login::upstream`.

mod mapping;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::config::{Config, UpstreamOidcConfig};
use crate::domain::pending::UpstreamLogin;
use crate::http::outbound::{JsonClient, PostError};

pub use mapping::{MapError, claim_path};

/// How far apart fedgate's clock and the provider's may be (`exp`, `iat`, `nbf`).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Each exchange with a provider (discovery, JWKS, token, userinfo) is bounded by this.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed discovery, the next attempt waits at least this long.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);
/// The JWKS is fetched again on an unknown `kid` at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);

/// Signature algorithms accepted on upstream ID tokens: asymmetric only (never `none`, never HMAC, so a public
/// key can never be used as an HMAC secret).
const ALLOWED_ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Why an upstream sign-in failed. The `Display` text is shown on the error page: it names the provider and the
/// check, never a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Discovery (or the JWKS) could not be fetched: the provider is down or misconfigured.
    #[error("{provider} is unavailable: {reason}")]
    Unavailable {
        /// The provider's label.
        provider: String,
        /// What failed.
        reason: String,
    },
    /// The provider refused the authorization request, or the user cancelled (`?error=` on the callback).
    #[error("{provider} did not sign you in: {error}")]
    Denied {
        /// The provider's label.
        provider: String,
        /// The provider's `error` (and description).
        error: String,
    },
    /// The code could not be exchanged (expired, replayed, wrong client credentials).
    #[error("{provider} refused the sign-in code: {reason}")]
    TokenExchange {
        /// The provider's label.
        provider: String,
        /// The provider's answer, shortened.
        reason: String,
    },
    /// The ID token failed verification.
    #[error("The ID token from {provider} is not valid: {reason}")]
    IdToken {
        /// The provider's label.
        provider: String,
        /// The check that failed.
        reason: String,
    },
    /// A signed userinfo answer failed verification, or the answer was unreadable.
    #[error("The userinfo answer from {provider} is not valid: {reason}")]
    UserInfo {
        /// The provider's label.
        provider: String,
        /// The check that failed.
        reason: String,
    },
    /// The identity could not be mapped, or is not allowed in.
    #[error("{provider}: {source}")]
    Mapping {
        /// The provider's label.
        provider: String,
        /// What is wrong with the identity.
        #[source]
        source: MapError,
    },
}

/// What the provider's discovery said, with its keys.
struct Discovered {
    metadata: ProviderMetadataWithLogout,
    fetched: Instant,
}

/// What the app's request asks of the sign-in at the upstream provider (OIDC `login_hint` and `prompt`, SAML
/// `ForceAuthn` as `prompt=login`), passed on in the upstream authorization request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamHints {
    /// The username or e-mail to prefill at the provider.
    pub login_hint: Option<String>,
    /// Space-separated `prompt` values (`login`, `consent`, `select_account`).
    pub prompt: Option<String>,
}

/// One `[[upstream.oidc]]` provider at run time.
pub struct UpstreamProvider {
    /// Its configuration.
    pub config: UpstreamOidcConfig,
    secret: Option<fedgate_types::Secret>,
    redirect_uri: RedirectUrl,
    issuer: IssuerUrl,
    http: JsonClient,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl std::fmt::Debug for UpstreamProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProvider").field("name", &self.config.name).finish_non_exhaustive()
    }
}

/// The verified outcome of a callback: the provider's claims (ID token, completed by userinfo).
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    /// ID-token claims, with userinfo claims the ID token lacks added.
    pub claims: Map<String, Value>,
    /// The raw ID token, for `id_token_hint` at upstream logout.
    pub id_token: String,
}

/// All configured providers.
#[derive(Debug, Default)]
pub struct Brokers {
    providers: Vec<Arc<UpstreamProvider>>,
}

impl Brokers {
    /// The providers of `config.upstream.oidc` (no network I/O: discovery happens on first use or in
    /// [`Brokers::discover_all`]).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        for p in &config.upstream.oidc {
            let secret =
                p.secret().map_err(|e| anyhow::anyhow!("upstream.oidc {}: client_secret_file: {e}", p.name))?;
            let redirect = config
                .server
                .public_url
                .join(&format!("login/{}/callback", p.name))
                .map_err(|e| anyhow::anyhow!("upstream.oidc {}: redirect URI: {e}", p.name))?;
            let redirect_uri = RedirectUrl::new(redirect.to_string())
                .map_err(|e| anyhow::anyhow!("upstream.oidc {}: redirect URI: {e}", p.name))?;
            let issuer = IssuerUrl::new(p.issuer.clone())
                .map_err(|e| anyhow::anyhow!("upstream.oidc {}: issuer {:?}: {e}", p.name, p.issuer))?;
            let http = JsonClient::new(p.ca_file.as_deref(), EXCHANGE_TIMEOUT)
                .map_err(|e| anyhow::anyhow!("upstream.oidc {}: {e}", p.name))?;
            providers.push(Arc::new(UpstreamProvider {
                config: p.clone(),
                secret,
                redirect_uri,
                issuer,
                http,
                discovered: RwLock::new(None),
                last_failure: Mutex::new(None),
            }));
        }
        Ok(Self { providers })
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<UpstreamProvider>> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    /// Every provider, in configuration order.
    pub fn all(&self) -> &[Arc<UpstreamProvider>] {
        &self.providers
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Runs discovery for every provider not discovered yet; failures are logged and retried later.
    pub async fn discover_all(&self) {
        for p in &self.providers {
            if let Err(e) = p.discovered().await {
                tracing::warn!(provider = %p.config.name, error = %e, "upstream OpenID Connect discovery failed");
            }
        }
    }
}

/// `openidconnect`'s HTTP client: ours, no redirects, bounded.
fn http_fn(
    client: &JsonClient,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, PostError>> + Send>> {
    let client = client.clone();
    move |req| {
        let client = client.clone();
        Box::pin(async move { client.send(req).await })
    }
}

fn short(s: impl std::fmt::Display) -> String {
    let s = s.to_string();
    if s.len() > 300 { format!("{}…", &s[..s.floor_char_boundary(300)]) } else { s }
}

impl UpstreamProvider {
    /// The button label.
    pub fn label(&self) -> &str {
        self.config.label()
    }

    /// Whether discovery has succeeded (the button is usable).
    pub fn available(&self) -> bool {
        self.discovered.read().is_ok_and(|d| d.is_some())
    }

    /// Why the provider is unavailable, for `/readyz`; `None` once discovered.
    pub fn problem(&self) -> Option<String> {
        if self.available() {
            return None;
        }
        Some(
            self.last_failure
                .lock()
                .ok()
                .and_then(|f| f.as_ref().map(|(_, e)| e.clone()))
                .unwrap_or_else(|| "discovery not done yet".into()),
        )
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> BrokerError {
        BrokerError::Unavailable { provider: self.label().to_string(), reason: short(reason) }
    }

    /// The discovery document and keys, fetched now if they are not yet (at most every few seconds after a failure).
    async fn discovered(&self) -> Result<Arc<Discovered>, BrokerError> {
        if let Some(d) = self.discovered.read().ok().and_then(|d| d.clone()) {
            return Ok(d);
        }
        if let Ok(f) = self.last_failure.lock()
            && let Some((at, e)) = f.as_ref()
            && at.elapsed() < DISCOVERY_RETRY
        {
            return Err(self.unavailable(e));
        }
        match ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &http_fn(&self.http)).await {
            Ok(metadata) => {
                let d = Arc::new(Discovered { metadata, fetched: Instant::now() });
                if let Ok(mut slot) = self.discovered.write() {
                    *slot = Some(d.clone());
                }
                if let Ok(mut f) = self.last_failure.lock() {
                    *f = None;
                }
                tracing::info!(provider = %self.config.name, issuer = %self.config.issuer, "upstream OpenID Connect provider discovered");
                Ok(d)
            }
            Err(e) => {
                let reason = format!("discovery at {} failed: {}", self.config.issuer, error_chain(&e));
                if let Ok(mut f) = self.last_failure.lock() {
                    *f = Some((Instant::now(), reason.clone()));
                }
                Err(self.unavailable(reason))
            }
        }
    }

    /// Fetches the JWKS again (an unknown `kid`: the provider rotated its keys), at most every [`JWKS_REFETCH`].
    async fn refetch_keys(&self, current: &Discovered) -> Option<Arc<Discovered>> {
        if current.fetched.elapsed() < JWKS_REFETCH {
            return None;
        }
        let jwks = JsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &http_fn(&self.http)).await.ok()?;
        let d = Arc::new(Discovered { metadata: current.metadata.clone().set_jwks(jwks), fetched: Instant::now() });
        if let Ok(mut slot) = self.discovered.write() {
            *slot = Some(d.clone());
        }
        Some(d)
    }

    /// Starts a sign-in: the authorization URL to send the browser to, and what the callback needs (kept
    /// server-side under `state`).
    pub async fn start(
        &self,
        return_to: String,
        binding: String,
        hints: &UpstreamHints,
    ) -> Result<(url::Url, UpstreamLogin), BrokerError> {
        let d = self.discovered().await?;
        let client = openidconnect::core::CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            None,
        )
        .set_redirect_uri(self.redirect_uri.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for s in self.config.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        for (k, v) in &self.config.authorization_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        // What the app asked of the login, passed on as Keycloak's broker does; a value the operator fixed in
        // `authorization_params` wins (Keycloak: the identity provider's own `prompt` setting).
        for (k, v) in [("login_hint", &hints.login_hint), ("prompt", &hints.prompt)] {
            if let Some(v) = v.as_ref().filter(|_| !self.config.authorization_params.contains_key(k)) {
                req = req.add_extra_param(k, v.clone());
            }
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        let login = UpstreamLogin {
            provider: self.config.name.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            binding,
        };
        Ok((url, login))
    }

    /// Finishes a sign-in: exchanges `code` (with the PKCE verifier), verifies the ID token (issuer, audience,
    /// `azp`, expiry, `iat`, `nbf`, nonce, signature by an allowed algorithm) and completes the claims by userinfo.
    pub async fn finish(
        &self,
        code: &str,
        login: &UpstreamLogin,
        now: OffsetDateTime,
    ) -> Result<UpstreamIdentity, BrokerError> {
        let d = self.discovered().await?;
        let secret = self.secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string()));
        let client = openidconnect::core::CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(self.redirect_uri.clone());
        let http = http_fn(&self.http);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| self.unavailable(format!("no token endpoint in discovery ({e})")))?;
        let token = exchange
            .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                // The provider did not answer: it is down, not refusing.
                openidconnect::RequestTokenError::Request(ref t) => {
                    self.unavailable(format!("token endpoint: {}", error_chain(t)))
                }
                e => BrokerError::TokenExchange { provider: self.label().into(), reason: token_error(&e) },
            })?;
        let id_token = token.id_token().ok_or_else(|| BrokerError::IdToken {
            provider: self.label().into(),
            reason: "the token response has no id_token".into(),
        })?;
        let nonce = Nonce::new(login.nonce.clone());
        let verify = |d: &Discovered| {
            let verifier = openidconnect::core::CoreIdTokenVerifier::new_public_client(
                ClientId::new(self.config.client_id.clone()),
                self.issuer.clone(),
                d.metadata.jwks().clone(),
            )
            .set_allowed_algs(ALLOWED_ALGS.iter().cloned())
            .set_time_fn(move || to_chrono(now - CLOCK_SKEW))
            .set_issue_time_verifier_fn(move |iat| {
                if iat > to_chrono(now + CLOCK_SKEW) { Err(format!("issued in the future ({iat})")) } else { Ok(()) }
            });
            id_token.claims(&verifier, &nonce).map(|_| ())
        };
        let mut outcome = verify(&d);
        if let Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            openidconnect::SignatureVerificationError::NoMatchingKey,
        )) = &outcome
            && let Some(fresh) = self.refetch_keys(&d).await
        {
            outcome = verify(&fresh);
        }
        outcome.map_err(|e| BrokerError::IdToken { provider: self.label().into(), reason: short(error_chain(&e)) })?;
        let raw = id_token.to_string();
        let mut claims = payload(&raw).ok_or_else(|| BrokerError::IdToken {
            provider: self.label().into(),
            reason: "unreadable payload".into(),
        })?;
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf > (now + CLOCK_SKEW).unix_timestamp()
        {
            return Err(BrokerError::IdToken { provider: self.label().into(), reason: "not valid yet (nbf)".into() });
        }
        if let Some(userinfo) = d.metadata.userinfo_endpoint() {
            let info = self.userinfo(&d, userinfo.url(), token.access_token().secret(), now).await?;
            if info.get("sub") != claims.get("sub") {
                return Err(BrokerError::IdToken {
                    provider: self.label().into(),
                    reason: "userinfo is about another subject than the ID token".into(),
                });
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Ok(UpstreamIdentity { claims, id_token: raw })
    }

    /// The userinfo answer: a JSON object, or a signed JWT (`application/jwt`, when the client registered
    /// `userinfo_signed_response_alg`) verified like an ID token's signature (the provider's JWKS, fetched again
    /// once on an unknown `kid`, the same algorithm allow-list), with `iss` equal to the issuer and `aud` naming
    /// this client (OpenID Connect Core §5.3.2). An answer that is neither is refused.
    async fn userinfo(
        &self,
        d: &Discovered,
        url: &url::Url,
        access_token: &str,
        now: OffsetDateTime,
    ) -> Result<Map<String, Value>, BrokerError> {
        let request = http::Request::get(url.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {access_token}"))
            .header(http::header::ACCEPT, "application/json, application/jwt")
            .body(Vec::new())
            .map_err(|e| self.unavailable(format!("userinfo: {e}")))?;
        let response =
            self.http.send(request).await.map_err(|e| self.unavailable(format!("userinfo: {}", error_chain(&e))))?;
        if !response.status().is_success() {
            return Err(self.unavailable(format!("userinfo answered {}", response.status())));
        }
        let bad = |reason: String| BrokerError::UserInfo { provider: self.label().into(), reason };
        let essence = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if essence == "application/jwt" {
            let jwt = std::str::from_utf8(response.body()).map_err(|_| bad("the signed answer is not text".into()))?;
            let jwt = jwt.trim();
            let mut outcome = self.verify_signed_userinfo(jwt, d, now);
            if matches!(outcome, Err(SignedUserInfo::NoMatchingKey))
                && let Some(fresh) = self.refetch_keys(d).await
            {
                outcome = self.verify_signed_userinfo(jwt, &fresh, now);
            }
            return outcome.map_err(|e| bad(e.to_string()));
        }
        match serde_json::from_slice::<Value>(response.body()) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad(format!("the answer is neither a JSON object nor a signed JWT (content type {essence:?})"))),
        }
    }

    /// Verifies a signed userinfo answer and returns its claims.
    fn verify_signed_userinfo(
        &self,
        jwt: &str,
        d: &Discovered,
        now: OffsetDateTime,
    ) -> Result<Map<String, Value>, SignedUserInfo> {
        use base64::Engine as _;
        use openidconnect::JsonWebKey as _;
        let b64 = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('='));
        let mut parts = jwt.split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignedUserInfo::Malformed("not a signed JWT (an encrypted answer is not supported)"));
        };
        let header: Map<String, Value> = b64(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(SignedUserInfo::Malformed("unreadable header"))?;
        if header.contains_key("crit") {
            return Err(SignedUserInfo::Malformed("critical header fields are not supported"));
        }
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::String(alg_name.to_string()))
            .ok()
            .filter(|a| ALLOWED_ALGS.contains(a))
            .ok_or_else(|| SignedUserInfo::Algorithm(short(alg_name)))?;
        let signature = b64(signature).map_err(|_| SignedUserInfo::Malformed("unreadable signature"))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let signed = &jwt[..header_and_body_len(jwt)];
        let candidates: Vec<_> = d
            .metadata
            .jwks()
            .keys()
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
            .collect();
        if candidates.is_empty() {
            return Err(SignedUserInfo::NoMatchingKey);
        }
        if !candidates.iter().any(|k| k.verify_signature(&alg, signed.as_bytes(), &signature).is_ok()) {
            return Err(SignedUserInfo::Signature);
        }
        let claims: Map<String, Value> = b64(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(SignedUserInfo::Malformed("unreadable payload"))?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss != self.config.issuer {
            return Err(SignedUserInfo::Issuer(short(iss)));
        }
        let client_id = self.config.client_id.as_str();
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(a)) => a.iter().any(|a| a == client_id),
            _ => false,
        };
        if !audience_ok {
            return Err(SignedUserInfo::Audience);
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
            && exp < (now - CLOCK_SKEW).unix_timestamp()
        {
            return Err(SignedUserInfo::Expired);
        }
        Ok(claims)
    }

    /// Where to send the browser to end the upstream session, when `logout_upstream` is on and the provider has an
    /// `end_session_endpoint`.
    pub fn end_session_url(&self, id_token_hint: Option<&str>, post_logout: &url::Url) -> Option<url::Url> {
        if !self.config.logout_upstream {
            return None;
        }
        let d = self.discovered.read().ok()?.clone()?;
        let mut url = d.metadata.additional_metadata().end_session_endpoint.as_ref()?.url().clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.config.client_id);
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("post_logout_redirect_uri", post_logout.as_str());
        }
        Some(url)
    }

    /// Maps verified claims to a fedgate user (`link = "none"`): username, unique id, e-mail, groups, and the
    /// roles `[roles]` grants those groups; refused when the e-mail domain or groups are not allowed.
    pub fn map_user(
        &self,
        claims: &Map<String, Value>,
        roles: &ldap_mapper::RoleMap,
    ) -> Result<ldap_mapper::MappedUser, BrokerError> {
        mapping::map_user(&self.config, claims, roles)
            .map_err(|source| BrokerError::Mapping { provider: self.label().into(), source })
    }

    /// The value of `link_claim` to look the directory entry up by (`link = "ldap"`); `None` when the claim is
    /// missing or empty, refused when it is an e-mail address the provider has not verified.
    pub fn link_value(&self, claims: &Map<String, Value>) -> Result<Option<String>, BrokerError> {
        mapping::link_value(&self.config, claims)
            .map_err(|source| BrokerError::Mapping { provider: self.label().into(), source })
    }

    /// Checks the allow-lists only (for `link = "ldap"`, whose user comes from the directory).
    pub fn check_allowed(&self, claims: &Map<String, Value>) -> Result<(), BrokerError> {
        mapping::check_allowed(&self.config, claims)
            .map_err(|source| BrokerError::Mapping { provider: self.label().into(), source })
    }
}

/// The token endpoint's refusal, without echoing a body that may hold tokens.
fn token_error<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => short(match r.error_description() {
            Some(d) => format!("{} ({d})", r.error()),
            None => r.error().to_string(),
        }),
        openidconnect::RequestTokenError::Request(e) => short(format!("the request failed: {}", error_chain(e))),
        openidconnect::RequestTokenError::Parse(e, _) => short(format!("unreadable token response at {}", e.path())),
        openidconnect::RequestTokenError::Other(s) => short(s),
    }
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}

/// Why a signed userinfo answer was refused.
#[derive(Debug, thiserror::Error)]
enum SignedUserInfo {
    /// Not a compact JWS, or a part is not base64url JSON.
    #[error("{0}")]
    Malformed(&'static str),
    /// `alg` is not in the allow-list (`none`, HMAC, unknown).
    #[error("the signature algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// No key of the provider's JWKS has the `kid`.
    #[error("no key of the provider's JWKS matches the signature's key id")]
    NoMatchingKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("the issuer {0:?} is not the provider's")]
    Issuer(String),
    /// `aud` does not name this client.
    #[error("the audience does not name this client")]
    Audience,
    /// `exp` is in the past.
    #[error("expired")]
    Expired,
}

/// The length of a compact JWS's signing input (`header.payload`).
fn header_and_body_len(jwt: &str) -> usize {
    jwt.rfind('.').unwrap_or(0)
}

/// The JSON payload of a (verified) JWT.
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
