//! Fixtures shared by the fuzz targets: one SAML IdP and one OIDC provider with fixed keys, clients and service
//! providers (built once per process), a fixed `now`, and a tiny executor for the providers' async methods (their
//! in-memory store never waits).
//!
//! The keys in `fixtures/` are test keys made for fuzzing only; they sign nothing outside this directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use federation::Principal;
use federation::oidc::{KeySet, MemoryGrantStore, OidcConfig, Params, Provider, SigningKey};
use federation::saml::{IdentityProvider, SamlConfig};
use time::OffsetDateTime;

/// The directory holding the fixture keys and certificates.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// The gateway's public URL (OIDC issuer and SAML base).
pub const PUBLIC_URL: &str = "https://gw.example/";
/// The OIDC issuer (`iss`).
pub const ISSUER: &str = "https://gw.example";

/// Entity IDs of the fixture SAML service providers: signatures required (with a certificate), signatures checked
/// when present (with a certificate), and no certificate at all.
pub const SP_SIGNED: &str = "https://sp.example/signed";
/// See [`SP_SIGNED`].
pub const SP_OPTIONAL: &str = "https://sp.example/optional";
/// See [`SP_SIGNED`].
pub const SP_PLAIN: &str = "https://sp.example/plain";

/// The confidential OIDC client's secret.
pub const SECRET: &str = "app-secret-0123456789";
/// A PKCE verifier and its S256 challenge (RFC 7636 appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// See [`VERIFIER`].
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The fixed "now" of every target: 2027-01-15T08:00:00Z.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// The signed-in user protocols answer for.
pub fn principal() -> Principal {
    Principal {
        subject: "8f0c-uuid".into(),
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        display_name: Some("Alice <Liddell> & Co".into()),
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
        groups: vec!["staff".into(), "dev".into()],
        group_paths: vec!["/staff".into(), "/eng/dev".into()],
        roles: vec!["admin".into()],
        claims: BTreeMap::from([("department".to_string(), vec!["R&D".to_string()])]),
        auth_time: now(),
        authn: Default::default(),
        saml_persistent_nameids: BTreeMap::new(),
    }
}

/// Runs a future to completion on this thread (the providers' futures complete without waiting).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn saml_config() -> SamlConfig {
    let toml = format!(
        r#"
cert_file = "{f}/idp.crt"
key_file = "{f}/idp.key"
keys_dir = "{f}/no-such-dir"

[[service_providers]]
name = "signed"
entity_id = "{SP_SIGNED}"
acs_urls = ["https://sp.example/signed/acs", "https://sp.example/signed/acs2"]
slo_url = "https://sp.example/signed/slo"
certificate_file = "{f}/sp.crt"
want_authn_requests_signed = true

[[service_providers]]
name = "optional"
entity_id = "{SP_OPTIONAL}"
acs_urls = ["https://sp.example/optional/acs"]
slo_url = "https://sp.example/optional/slo"
certificate_file = "{f}/sp.crt"

[[service_providers]]
name = "plain"
entity_id = "{SP_PLAIN}"
acs_urls = ["https://sp.example/plain/acs"]
slo_url = "https://sp.example/plain/slo"
nameid_template = "{{username}}@corp.example"
"#,
        f = FIXTURES
    );
    toml::from_str(&toml).unwrap()
}

/// The fixture SAML IdP.
pub fn idp() -> &'static IdentityProvider {
    static IDP: OnceLock<IdentityProvider> = OnceLock::new();
    IDP.get_or_init(|| {
        let cfg = saml_config();
        let issues = cfg.validate();
        assert!(issues.is_empty(), "{issues:?}");
        IdentityProvider::new(cfg, &url::Url::parse(PUBLIC_URL).unwrap()).unwrap()
    })
}

/// The SP's signing keys (for signed requests).
pub fn sp_keys() -> &'static federation::saml::SigningKeys {
    static KEYS: OnceLock<federation::saml::SigningKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::path::Path::new(FIXTURES);
        federation::saml::SigningKeys::from_files(&dir.join("sp.crt"), &dir.join("sp.key")).unwrap()
    })
}

/// The OIDC signing keys: ES256 active, RS256 previous (both verify).
pub fn oidc_keys() -> KeySet {
    let active = SigningKey::from_pem(include_bytes!("../fixtures/oidc-keys/active.pem"), "active.pem").unwrap();
    let previous =
        SigningKey::from_pem(include_bytes!("../fixtures/oidc-keys/previous.pem"), "previous.pem").unwrap();
    KeySet::new(active, Some(previous))
}

fn oidc_config() -> OidcConfig {
    let toml = format!(
        r#"
signing_algorithm = "ES256"
keys_dir = "{FIXTURES}/oidc-keys"

[scope_claims]
org = ["department"]

[[clients]]
client_id = "app"
client_secret = "{SECRET}"
redirect_uris = ["https://app.example/cb", "https://app.example/cb2?x=1"]
post_logout_redirect_uris = ["https://app.example/bye"]
scopes = ["openid", "profile", "email", "groups", "roles", "org"]

[[clients]]
client_id = "spa"
public = true
redirect_uris = ["http://127.0.0.1:8080/cb"]
post_logout_redirect_uris = ["http://127.0.0.1:8080/"]

[[clients]]
client_id = "svc"
client_secret = "{SECRET}"
grant_types = ["client_credentials"]
scopes = ["groups"]

[[clients]]
client_id = "strict"
client_secret = "{SECRET}"
require_pkce = true
redirect_uris = ["https://strict.example/cb"]

[[clients]]
client_id = "finance-app"
client_secret = "{SECRET}"
allowed_groups = ["finance"]
redirect_uris = ["https://finance.example/cb"]
"#
    );
    let cfg: OidcConfig = toml::from_str(&toml).unwrap();
    let issues = cfg.validate();
    assert!(issues.is_empty(), "{issues:?}");
    cfg
}

/// The fixture OIDC provider (in-memory grant store; grants from earlier runs stay until evicted).
pub fn oidc() -> &'static Provider {
    static OIDC: OnceLock<Provider> = OnceLock::new();
    OIDC.get_or_init(|| {
        let store = Arc::new(MemoryGrantStore::new(20_000));
        Provider::new(oidc_config(), url::Url::parse(PUBLIC_URL).unwrap(), oidc_keys(), store).unwrap()
    })
}

/// `Params` from `(name, value)` pairs.
pub fn params(pairs: &[(&str, &str)]) -> Params {
    Params::new(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect())
}

/// A fresh authorization code: for `app` (confidential, PKCE S256 with [`CHALLENGE`]) or `spa` (public, PKCE).
pub fn fresh_code(client: &str) -> String {
    let redirect = if client == "spa" { "http://127.0.0.1:8080/cb" } else { "https://app.example/cb" };
    let p = params(&[
        ("client_id", client),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid profile email groups"),
        ("state", "s"),
        ("nonce", "n"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let provider = oidc();
    let req = provider.authorize(&p, now()).unwrap();
    let url = block_on(provider.issue_code(&req, &principal(), now())).unwrap();
    url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap()
}

/// A fresh token response for `app` (access token, ID token, refresh token), through the real code flow.
pub fn fresh_tokens() -> federation::oidc::TokenResponse {
    let code = fresh_code("app");
    let p = params(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "https://app.example/cb"),
        ("code_verifier", VERIFIER),
        ("client_id", "app"),
        ("client_secret", SECRET),
    ]);
    block_on(oidc().token(&p, None, now())).unwrap()
}

/// Lossy UTF-8, as the gateway reads form bodies.
pub fn lossy(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
