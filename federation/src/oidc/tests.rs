//! Provider-level tests: whole flows through the facade with a real moka store and real keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openidconnect::core::{CoreIdTokenVerifier, CoreTokenResponse};
use openidconnect::{ClientId, ClientSecret as OidcSecret, IssuerUrl, Nonce, OAuth2TokenResponse};
use time::OffsetDateTime;
use url::Url;

use super::claims::OidcIdToken;
use super::store::block_on;
use super::*;
use crate::Principal;

const SECRET: &str = "app-secret-0123456789";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn at(secs: i64) -> OffsetDateTime {
    now() + time::Duration::seconds(secs)
}

fn principal() -> Principal {
    Principal {
        subject: "8f0c-uuid".into(),
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        display_name: Some("Alice <Liddell> & Co".into()),
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
        groups: vec!["staff".into(), "dev".into()],
        group_paths: vec![],
        roles: vec!["admin".into()],
        claims: BTreeMap::from([("department".to_string(), vec!["R&D".to_string()])]),
        saml_persistent_nameids: Default::default(),
        auth_time: now(),
        authn: Default::default(),
    }
}

fn config(alg: SigningAlgorithm) -> OidcConfig {
    let mut scopes = ClientConfig::default().scopes;
    scopes.push("org".into());
    let confidential = |id: &str| ClientConfig {
        client_id: id.into(),
        scopes: scopes.clone(),
        client_secret: Some(crate::Secret::new(SECRET)),
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        ..ClientConfig::default()
    };
    let app = confidential("app");
    let spa = ClientConfig {
        client_id: "spa".into(),
        public: true,
        redirect_uris: vec!["http://127.0.0.1:8080/cb".into()],
        scopes: scopes.clone(),
        ..ClientConfig::default()
    };
    let svc = ClientConfig {
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["groups".into()],
        redirect_uris: vec![],
        ..confidential("svc")
    };
    let restricted = ClientConfig { allowed_groups: Some(vec!["finance".into()]), ..confidential("finance-app") };
    let strict = ClientConfig { require_pkce: true, ..confidential("strict") };
    let cfg = OidcConfig {
        signing_algorithm: alg,
        scope_claims: BTreeMap::from([("org".to_string(), vec!["department".to_string()])]),
        clients: vec![app, spa, svc, restricted, strict],
        ..OidcConfig::default()
    };
    assert!(cfg.validate().is_empty(), "{:#?}", cfg.validate());
    cfg
}

fn provider_with(alg: SigningAlgorithm, keys: KeySet, store: Arc<dyn GrantStore>) -> Provider {
    Provider::new(config(alg), Url::parse("https://gw.example/").unwrap(), keys, store).unwrap()
}

fn provider(alg: SigningAlgorithm) -> Provider {
    provider_with(alg, KeySet::generate(alg).unwrap(), Arc::new(MemoryGrantStore::new(10_000)))
}

fn q(pairs: &[(&str, &str)]) -> Params {
    Params::new(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect())
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn auth_params<'a>(client: &'a str, redirect: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("client_id", client),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid profile email groups roles org"),
        ("state", "st&te"),
        ("nonce", "n-0S6"),
    ];
    p.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    p.extend_from_slice(extra);
    p
}

/// Runs authorize + issue_code and returns the code.
fn code_for(p: &Provider, client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let req = p.authorize(&q(&auth_params(client, redirect, extra)), now()).unwrap();
    let url = block_on(p.issue_code(&req, &principal(), now())).unwrap();
    let pairs: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st&te");
    assert_eq!(pairs["iss"], "https://gw.example");
    pairs["code"].clone()
}

fn redeem(p: &Provider, code: &str, extra: &[(&str, &str)], when: OffsetDateTime) -> Result<TokenResponse, TokenError> {
    let mut form =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "https://app.example/cb")];
    form.extend_from_slice(extra);
    block_on(p.token(&q(&form), Some(&basic("app", SECRET)), when))
}

fn login(p: &Provider) -> TokenResponse {
    let code = code_for(p, "app", "https://app.example/cb", &[]);
    redeem(p, &code, &[], now()).unwrap()
}

fn refresh(p: &Provider, rt: &str, when: OffsetDateTime) -> Result<TokenResponse, TokenError> {
    block_on(p.token(&q(&[("grant_type", "refresh_token"), ("refresh_token", rt)]), Some(&basic("app", SECRET)), when))
}

fn code_of(e: TokenError) -> ErrorCode {
    e.code()
}

fn redirect_error(e: AuthorizeError) -> (String, BTreeMap<String, String>) {
    let url = e.redirect_url().unwrap_or_else(|| panic!("expected a redirect, got {e:?}"));
    let pairs: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    (pairs["error"].clone(), pairs)
}

#[test]
fn pkce_s256_ok_wrong_missing_and_plain_refused() {
    let p = provider(SigningAlgorithm::ES256);
    let spa = "http://127.0.0.1:8080/cb";
    let pkce = [("code_challenge", CHALLENGE), ("code_challenge_method", "S256")];
    let redeem_spa = |code: &str, verifier: Option<&str>| {
        let mut form =
            vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", spa), ("client_id", "spa")];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        block_on(p.token(&q(&form), None, now()))
    };
    // RFC 7636 appendix B values.
    let code = code_for(&p, "spa", spa, &pkce);
    let ok = redeem_spa(&code, Some(VERIFIER)).unwrap();
    assert!(ok.id_token.is_some());

    let code = code_for(&p, "spa", spa, &pkce);
    let wrong = redeem_spa(&code, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX")).unwrap_err();
    assert_eq!(code_of(wrong), ErrorCode::InvalidGrant);

    let code = code_for(&p, "spa", spa, &pkce);
    assert_eq!(code_of(redeem_spa(&code, None).unwrap_err()), ErrorCode::InvalidGrant);

    // Missing PKCE for a public client and for require_pkce.
    let (err, pairs) = redirect_error(p.authorize(&q(&auth_params("spa", spa, &[])), now()).unwrap_err());
    assert_eq!(err, "invalid_request");
    assert_eq!(pairs["state"], "st&te");
    let strict = p.authorize(&q(&auth_params("strict", "https://app.example/cb", &[])), now()).unwrap_err();
    assert_eq!(redirect_error(strict).0, "invalid_request");
    // plain, explicit or implied, is refused.
    for extra in
        [&[("code_challenge", VERIFIER), ("code_challenge_method", "plain")][..], &[("code_challenge", VERIFIER)][..]]
    {
        let e = p.authorize(&q(&auth_params("spa", spa, extra)), now()).unwrap_err();
        assert_eq!(redirect_error(e).0, "invalid_request");
    }
    // A verifier without a challenge is a downgrade attempt.
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    assert_eq!(code_of(redeem(&p, &code, &[("code_verifier", VERIFIER)], now()).unwrap_err()), ErrorCode::InvalidGrant);
}

#[test]
fn redirect_uri_must_match_exactly_and_is_never_redirected_to() {
    let p = provider(SigningAlgorithm::EdDSA);
    for bad in [
        "https://app.example/cb/",
        "https://APP.example/cb",
        "https://app.example/CB",
        "https://app.example/cb?x=1",
        "https://evil.example/cb",
    ] {
        let e = p.authorize(&q(&auth_params("app", bad, &[])), now()).unwrap_err();
        assert!(matches!(e, AuthorizeError::Display(_)), "{bad}: {e:?}");
        assert!(e.redirect_url().is_none());
    }
    let unknown = p.authorize(&q(&auth_params("nope", "https://app.example/cb", &[])), now()).unwrap_err();
    assert!(matches!(unknown, AuthorizeError::Display(_)));
    // Redirect URI mismatch between authorize and token.
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    let form =
        [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://app.example/cb/")];
    let e = block_on(p.token(&q(&form), Some(&basic("app", SECRET)), now())).unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidGrant);
}

#[test]
fn authorize_request_errors_go_back_to_the_client() {
    let p = provider(SigningAlgorithm::ES256);
    let cb = "https://app.example/cb";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("scope", "openid bogus")], "invalid_scope"),
        (&[("scope", "profile")], "invalid_scope"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("prompt", "none login")], "invalid_request"),
        (&[("max_age", "soon")], "invalid_request"),
    ];
    for (extra, want) in cases {
        let mut params: Vec<(&str, &str)> =
            auth_params("app", cb, &[]).into_iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        params.extend_from_slice(extra);
        let e = p.authorize(&q(&params), now()).unwrap_err();
        assert_eq!(redirect_error(e).0, *want, "{extra:?}");
    }
    // A repeated parameter is invalid_request.
    let mut params = auth_params("app", cb, &[]);
    params.push(("nonce", "again"));
    assert_eq!(redirect_error(p.authorize(&q(&params), now()).unwrap_err()).0, "invalid_request");
    // The svc client may not use the code flow.
    let svc = p.authorize(&q(&auth_params("svc", cb, &[])), now()).unwrap_err();
    assert!(matches!(svc, AuthorizeError::Display(_)), "svc has no redirect URIs registered");
}

#[test]
fn over_long_authorize_parameters_are_refused_by_name() {
    let p = provider(SigningAlgorithm::ES256);
    let cb = "https://app.example/cb";
    let long = "x".repeat(5000);
    // Before the client and its redirect URI are known: shown on the gateway, never redirected.
    for name in ["client_id", "redirect_uri"] {
        let e = p.authorize(&q(&auth_params("app", cb, &[(name, long.as_str())])), now()).unwrap_err();
        let AuthorizeError::Display(e) = e else { panic!("{name}: expected a page, got {e:?}") };
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.starts_with(&format!("{name} is too long (5000 bytes")), "{}", e.description);
    }
    // After: back to the client as invalid_request, naming the parameter; an over-long state is not echoed.
    let many_scopes = "openid ".repeat(1000);
    for (name, value) in [
        ("state", long.as_str()),
        ("nonce", long.as_str()),
        ("login_hint", long.as_str()),
        ("scope", many_scopes.as_str()),
        ("code_challenge", long.as_str()),
        ("prompt", long.as_str()),
    ] {
        let e = p.authorize(&q(&auth_params("app", cb, &[(name, value)])), now()).unwrap_err();
        let (code, pairs) = redirect_error(e);
        assert_eq!(code, "invalid_request", "{name}");
        assert!(pairs["error_description"].starts_with(&format!("{name} is too long")), "{pairs:?}");
        assert_eq!(pairs.get("state").map(String::as_str), (name != "state").then_some("st&te"), "{name}");
    }
    // At the limit is fine.
    let state = "s".repeat(1024);
    assert!(p.authorize(&q(&auth_params("app", cb, &[("state", state.as_str())])), now()).is_ok());
}

#[test]
fn prompt_and_max_age_decide_login() {
    let p = provider(SigningAlgorithm::ES256);
    let cb = "https://app.example/cb";
    let none = p.authorize(&q(&auth_params("app", cb, &[("prompt", "none")])), now()).unwrap();
    let LoginDecision::Fail(url) = none.login_decision(None, now()) else { panic!("expected login_required") };
    let pairs: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["error"], "login_required");
    assert_eq!(pairs["state"], "st&te");
    assert_eq!(none.login_decision(Some(at(-10)), now()), LoginDecision::Proceed);

    let max_age = p.authorize(&q(&auth_params("app", cb, &[("max_age", "60")])), now()).unwrap();
    assert_eq!(max_age.login_decision(Some(at(-61)), now()), LoginDecision::Login);
    assert_eq!(max_age.login_decision(Some(at(-59)), now()), LoginDecision::Proceed);

    let login = p.authorize(&q(&auth_params("app", cb, &[("prompt", "login")])), now()).unwrap();
    assert_eq!(login.login_decision(Some(at(-1)), now()), LoginDecision::Login);
    assert_eq!(login.login_decision(Some(at(5)), at(6)), LoginDecision::Proceed);
}

#[test]
fn code_is_single_use_and_replay_revokes_what_it_issued() {
    let p = provider(SigningAlgorithm::RS256);
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    let first = redeem(&p, &code, &[], now()).unwrap();
    assert!(block_on(p.verify_access_token(&first.access_token, now())).is_ok());
    let replay = redeem(&p, &code, &[], now()).unwrap_err();
    assert_eq!(code_of(replay), ErrorCode::InvalidGrant);
    let revoked = block_on(p.verify_access_token(&first.access_token, now())).unwrap_err();
    assert_eq!(code_of(revoked), ErrorCode::InvalidToken);
    let rt = first.refresh_token.unwrap();
    assert_eq!(code_of(refresh(&p, &rt, now()).unwrap_err()), ErrorCode::InvalidGrant);
}

#[test]
fn concurrent_redemption_yields_one_token_set() {
    let p = provider(SigningAlgorithm::ES256);
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    let wins: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| usize::from(redeem(&p, &code, &[], now()).is_ok()))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}

#[test]
fn expired_code_is_refused() {
    let p = provider(SigningAlgorithm::ES256);
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    let e = redeem(&p, &code, &[], at(61)).unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidGrant);
    let code = code_for(&p, "app", "https://app.example/cb", &[]);
    assert!(redeem(&p, &code, &[], at(60)).is_ok());
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let p = provider(SigningAlgorithm::EdDSA);
    let first = login(&p);
    let rt1 = first.refresh_token.clone().unwrap();
    let second = refresh(&p, &rt1, at(100)).unwrap();
    let rt2 = second.refresh_token.clone().unwrap();
    assert_ne!(rt1, rt2);
    assert!(second.id_token.is_some());
    let third = refresh(&p, &rt2, at(200)).unwrap();
    assert!(block_on(p.verify_access_token(&third.access_token, at(201))).is_ok());

    // Reusing rt1 burns everything in the family.
    assert_eq!(code_of(refresh(&p, &rt1, at(300)).unwrap_err()), ErrorCode::InvalidGrant);
    let rt3 = third.refresh_token.unwrap();
    assert_eq!(code_of(refresh(&p, &rt3, at(301)).unwrap_err()), ErrorCode::InvalidGrant);
    assert!(block_on(p.verify_access_token(&third.access_token, at(302))).is_err());

    // Expired refresh token, wrong client, narrower scope.
    let fresh = login(&p).refresh_token.unwrap();
    let too_late = p.config().refresh_token_ttl.as_secs() as i64 + 1;
    assert_eq!(code_of(refresh(&p, &fresh, at(too_late)).unwrap_err()), ErrorCode::InvalidGrant);
    let fresh = login(&p).refresh_token.unwrap();
    let other = q(&[("grant_type", "refresh_token"), ("refresh_token", &fresh)]);
    let e = block_on(p.token(&other, Some(&basic("strict", SECRET)), now())).unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidGrant);
    let narrow = q(&[("grant_type", "refresh_token"), ("refresh_token", &fresh), ("scope", "openid email")]);
    let r = block_on(p.token(&narrow, Some(&basic("app", SECRET)), now())).unwrap();
    assert_eq!(r.scope, "openid email");
    let wide = q(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &r.refresh_token.unwrap()),
        ("scope", "openid offline_access"),
    ]);
    assert_eq!(
        code_of(block_on(p.token(&wide, Some(&basic("app", SECRET)), now())).unwrap_err()),
        ErrorCode::InvalidScope
    );
}

struct Renamed;
impl PrincipalRefresh for Renamed {
    fn refresh<'a>(&'a self, snapshot: &'a Principal) -> store::StoreFuture<'a, Option<Principal>> {
        Box::pin(async move { Some(Principal { groups: vec!["new".into()], ..snapshot.clone() }) })
    }
}
struct Gone;
impl PrincipalRefresh for Gone {
    fn refresh<'a>(&'a self, _: &'a Principal) -> store::StoreFuture<'a, Option<Principal>> {
        Box::pin(async move { None })
    }
}

#[test]
fn refresh_can_use_a_fresh_principal() {
    let p = provider(SigningAlgorithm::ES256);
    let rt = login(&p).refresh_token.unwrap();
    let form = q(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
    let r = block_on(p.token_with(&form, Some(&basic("app", SECRET)), now(), &Renamed)).unwrap();
    let claims = block_on(p.verify_access_token(&r.access_token, now())).unwrap();
    assert_eq!(claims.groups, vec!["new"]);
    let info = block_on(p.userinfo(&r.access_token, now())).unwrap();
    assert_eq!(info["groups"], serde_json::json!(["new"]));

    let form = q(&[("grant_type", "refresh_token"), ("refresh_token", r.refresh_token.as_deref().unwrap())]);
    let e = block_on(p.token_with(&form, Some(&basic("app", SECRET)), now(), &Gone)).unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidGrant);
    assert!(block_on(p.verify_access_token(&r.access_token, now())).is_err());
}

/// Stands in for the directory lookup of a refresh: while it "waits on LDAP", the token is revoked (by the same
/// user's logout at another client, an admin, another replica), then the lookup answers.
struct RevokedWhileWaiting<'p> {
    provider: &'p Provider,
    token: String,
    rename: bool,
}
impl PrincipalRefresh for RevokedWhileWaiting<'_> {
    fn refresh<'a>(&'a self, snapshot: &'a Principal) -> store::StoreFuture<'a, Option<Principal>> {
        Box::pin(async move {
            let form = q(&[("token", &self.token)]);
            self.provider.revoke(&form, Some(&basic("app", SECRET)), now()).await.unwrap();
            let groups = if self.rename { vec!["renamed".into()] } else { snapshot.groups.clone() };
            Some(Principal { groups, ..snapshot.clone() })
        })
    }
}

#[test]
fn a_revocation_landing_while_a_refresh_waits_on_the_directory_is_not_undone() {
    // With and without a changed principal (only the first makes the refresh write the family back).
    for rename in [true, false] {
        let p = provider(SigningAlgorithm::ES256);
        let first = login(&p);
        let rt = first.refresh_token.clone().unwrap();
        let form = q(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
        let waiting = RevokedWhileWaiting { provider: &p, token: first.access_token.clone(), rename };
        let r = block_on(p.token_with(&form, Some(&basic("app", SECRET)), at(10), &waiting));
        let e = r.expect_err("a refresh whose family was revoked meanwhile must not issue tokens");
        assert_eq!(code_of(e), ErrorCode::InvalidGrant, "rename = {rename}");
        assert!(
            block_on(p.verify_access_token(&first.access_token, at(11))).is_err(),
            "the revocation was undone: the access token works again (rename = {rename})"
        );
        let intro = block_on(p.introspect(&q(&[("token", &rt)]), Some(&basic("app", SECRET)), at(12))).unwrap();
        assert_eq!(intro["active"], false, "rename = {rename}");
    }
}

/// Something to run once, keyed by the store key whose first write triggers it.
type Hook = (String, Box<dyn FnOnce() + Send>);

/// A grant store that runs the hook once, just before the first write to the hooked key: the moment a refresh
/// token's rotation is being recorded.
#[derive(Default)]
struct WriteHook {
    inner: MemoryGrantStore,
    hook: std::sync::Mutex<Option<Hook>>,
}
impl WriteHook {
    fn fire(&self, key: &str) {
        let mut hook = self.hook.lock().unwrap();
        if hook.as_ref().is_some_and(|(k, _)| k == key) {
            let (_, run) = hook.take().unwrap();
            drop(hook);
            run();
        }
    }
}
impl GrantStore for WriteHook {
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: store::Grant,
        ttl: Duration,
    ) -> store::StoreFuture<'a, Result<(), StoreError>> {
        self.fire(key);
        self.inner.put(key, value, ttl)
    }
    fn get<'a>(&'a self, key: &'a str) -> store::StoreFuture<'a, Result<Option<store::Grant>, StoreError>> {
        self.inner.get(key)
    }
    fn take<'a>(&'a self, key: &'a str) -> store::StoreFuture<'a, Result<Option<store::Grant>, StoreError>> {
        self.inner.take(key)
    }
    fn remove<'a>(&'a self, key: &'a str) -> store::StoreFuture<'a, Result<(), StoreError>> {
        self.inner.remove(key)
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a store::Grant>,
        new: store::Grant,
        ttl: Duration,
    ) -> store::StoreFuture<'a, Result<bool, StoreError>> {
        self.fire(key);
        self.inner.compare_and_set(key, expected, new, ttl)
    }
}

#[test]
fn a_refresh_token_replayed_while_its_rotation_is_recorded_is_reuse_and_revokes_the_family() {
    let store = Arc::new(WriteHook::default());
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let p = Arc::new(provider_with(SigningAlgorithm::ES256, keys, store.clone()));
    let first = login(&p);
    let rt = first.refresh_token.clone().unwrap();
    // When the legitimate refresh is about to record the rotation, an attacker (or a retrying client on another
    // replica) presents the same token.
    let replay: Arc<std::sync::Mutex<Option<Result<TokenResponse, TokenError>>>> = Arc::default();
    let (p2, rt2, out) = (Arc::clone(&p), rt.clone(), Arc::clone(&replay));
    *store.hook.lock().unwrap() =
        Some((super::store_key("rt", &rt), Box::new(move || *out.lock().unwrap() = Some(refresh(&p2, &rt2, at(10))))));
    let legit = refresh(&p, &rt, at(10));
    let replayed = replay.lock().unwrap().take().expect("the hook ran");
    // Exactly one of the two may have been answered with tokens, and whichever lost must have been seen as reuse.
    let (won, lost) = match (legit, replayed) {
        (Ok(t), Err(e)) | (Err(e), Ok(t)) => (Some(t), e),
        (Err(e), Err(_)) => (None, e),
        (Ok(_), Ok(_)) => panic!("one refresh token was exchanged twice"),
    };
    let lost = format!("{lost:?}");
    assert!(lost.contains("already used"), "the losing presentation must be seen as reuse, not as unknown: {lost}");
    let again = format!("{:?}", refresh(&p, &rt, at(11)).unwrap_err());
    assert!(again.contains("already used"), "a later presentation is reuse too: {again}");
    // The family is revoked: the first access token and whatever the winner got are refused.
    assert!(block_on(p.verify_access_token(&first.access_token, at(12))).is_err(), "the family was not revoked");
    if let Some(t) = won {
        assert!(block_on(p.verify_access_token(&t.access_token, at(12))).is_err(), "the winner's tokens survive");
        let e = refresh(&p, t.refresh_token.as_deref().unwrap(), at(12)).unwrap_err();
        assert_eq!(code_of(e), ErrorCode::InvalidGrant);
    }
}

#[test]
fn client_credentials_token_has_the_client_as_subject() {
    let p = provider(SigningAlgorithm::RS256);
    let form = q(&[("grant_type", "client_credentials"), ("scope", "groups")]);
    let r = block_on(p.token(&form, Some(&basic("svc", SECRET)), now())).unwrap();
    assert!(r.id_token.is_none() && r.refresh_token.is_none());
    assert_eq!(r.token_type, "Bearer");
    let c = block_on(p.verify_access_token(&r.access_token, now())).unwrap();
    assert_eq!(
        (c.sub.as_str(), c.client_id.as_str(), c.aud.client(), c.scope.as_str()),
        ("svc", "svc", "svc", "groups")
    );
    assert_eq!(
        code_of(block_on(p.verify_access_token(&r.access_token, at(600))).unwrap_err()),
        ErrorCode::InvalidToken
    );
    let header = jsonwebtoken::decode_header(&r.access_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    // Not allowed for app; unknown scope; unsupported grant.
    let e = block_on(p.token(&q(&[("grant_type", "client_credentials")]), Some(&basic("app", SECRET)), now()));
    assert_eq!(code_of(e.unwrap_err()), ErrorCode::UnauthorizedClient);
    let e = block_on(p.token(
        &q(&[("grant_type", "client_credentials"), ("scope", "email")]),
        Some(&basic("svc", SECRET)),
        now(),
    ));
    assert_eq!(code_of(e.unwrap_err()), ErrorCode::InvalidScope);
    let e = block_on(p.token(&q(&[("grant_type", "password")]), Some(&basic("svc", SECRET)), now()));
    assert_eq!(code_of(e.unwrap_err()), ErrorCode::UnsupportedGrantType);
}

#[test]
fn wrong_secret_is_invalid_client_401() {
    let p = provider(SigningAlgorithm::ES256);
    let form = q(&[("grant_type", "client_credentials")]);
    let e = block_on(p.token(&form, Some(&basic("svc", "wrong")), now())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    assert_eq!(e.http_status(), 401);
    assert_eq!(e.to_json()["error"], "invalid_client");
}

#[test]
fn allowed_groups_gives_access_denied() {
    let p = provider(SigningAlgorithm::ES256);
    let req = p.authorize(&q(&auth_params("finance-app", "https://app.example/cb", &[])), now()).unwrap();
    let e = block_on(p.issue_code(&req, &principal(), now())).unwrap_err();
    let (err, pairs) = redirect_error(e);
    assert_eq!(err, "access_denied");
    assert_eq!(pairs["state"], "st&te");
}

fn verify_id_token_with_jsonwebtoken(p: &Provider, token: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(serde_json::to_value(p.jwks()).unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&["app"]);
    v.set_issuer(&["https://gw.example"]);
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).unwrap().claims
}

#[test]
fn id_token_verifies_with_jsonwebtoken_and_openidconnect_for_every_algorithm() {
    for alg in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
        let p = provider(alg);
        let r = login(&p);
        let id_token = r.id_token.clone().unwrap();
        let claims = verify_id_token_with_jsonwebtoken(&p, &id_token);
        assert_eq!(claims["sub"], "8f0c-uuid", "{alg}");
        assert_eq!(claims["nonce"], "n-0S6");
        assert_eq!(claims["azp"], "app");
        assert_eq!(claims["auth_time"], 1_800_000_000);
        assert_eq!(claims["name"], "Alice <Liddell> & Co");
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["email"], "alice@example.org");
        assert_eq!(claims["groups"], serde_json::json!(["staff", "dev"]));
        assert_eq!(claims["roles"], serde_json::json!(["admin"]));
        assert_eq!(claims["department"], "R&D");
        assert!(claims["at_hash"].is_string());

        // openidconnect's verifier, with its own at_hash check.
        let jwks = p.jwks();
        let token = OidcIdToken::from_str(&id_token).unwrap();
        let core_alg = p.keys().active().core_algorithm();
        let verifier = CoreIdTokenVerifier::new_confidential_client(
            ClientId::new("app".into()),
            OidcSecret::new(SECRET.into()),
            IssuerUrl::new("https://gw.example".into()).unwrap(),
            jwks,
        )
        .set_allowed_algs(vec![core_alg.clone()])
        .set_time_fn(|| chrono::DateTime::from_timestamp(1_800_000_010, 0).unwrap());
        let verified = token.claims(&verifier, &Nonce::new("n-0S6".into())).unwrap();
        assert_eq!(verified.subject().as_str(), "8f0c-uuid");
        let at_hash = openidconnect::AccessTokenHash::from_token(
            &openidconnect::AccessToken::new(r.access_token.clone()),
            &core_alg,
            &openidconnect::PrivateSigningKey::as_verification_key(p.keys().active()),
        );
        assert_eq!(verified.access_token_hash(), at_hash.ok().as_ref());
        assert!(token.claims(&verifier, &Nonce::new("other".into())).is_err());

        // The JSON body parses as openidconnect's token response.
        let body = serde_json::to_string(&r).unwrap();
        let parsed: CoreTokenResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.access_token().secret(), &r.access_token);
        assert_eq!(parsed.expires_in(), Some(Duration::from_secs(600)));
    }
}

#[test]
fn token_signed_before_rotation_still_verifies_after() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn GrantStore> = Arc::new(MemoryGrantStore::new(1000));
    let keys = KeySet::load_or_generate(dir.path(), SigningAlgorithm::RS256).unwrap();
    let before = provider_with(SigningAlgorithm::RS256, keys, Arc::clone(&store));
    let r = login(&before);
    let rotated = KeySet::rotate(dir.path(), SigningAlgorithm::RS256).unwrap();
    let after = provider_with(SigningAlgorithm::RS256, rotated, store);
    assert_ne!(after.keys().active().kid(), before.keys().active().kid());
    assert!(block_on(after.verify_access_token(&r.access_token, now())).is_ok());
    verify_id_token_with_jsonwebtoken(&after, r.id_token.as_deref().unwrap());
    // New tokens use the new key.
    let r2 = login(&after);
    let kid = jsonwebtoken::decode_header(&r2.access_token).unwrap().kid.unwrap();
    assert_eq!(kid, after.keys().active().kid());
    // A second rotation drops the first key.
    let twice = provider_with(
        SigningAlgorithm::RS256,
        KeySet::rotate(dir.path(), SigningAlgorithm::RS256).unwrap(),
        Arc::new(MemoryGrantStore::new(10)),
    );
    assert!(block_on(twice.verify_access_token(&r.access_token, now())).is_err());
}

#[test]
fn userinfo_releases_claims_by_scope() {
    let p = provider(SigningAlgorithm::ES256);
    let code = code_for(&p, "app", "https://app.example/cb", &[("scope", "openid email")]);
    let r = redeem(&p, &code, &[], now()).unwrap();
    let info = block_on(p.userinfo(&r.access_token, now())).unwrap();
    assert_eq!(info["sub"], "8f0c-uuid");
    assert_eq!(info["email"], "alice@example.org");
    assert!(info.get("name").is_none() && info.get("groups").is_none() && info.get("department").is_none());
    let full = login(&p);
    let info = block_on(p.userinfo(&full.access_token, now())).unwrap();
    assert_eq!(info["family_name"], "Liddell");
    assert!(info.as_object().unwrap().values().all(|v| !v.is_null()), "{info:#}");
    assert_eq!(info["department"], "R&D");
    assert_eq!(code_of(block_on(p.userinfo("garbage", now())).unwrap_err()), ErrorCode::InvalidToken);
    // An ID token is not an access token.
    let e = block_on(p.userinfo(full.id_token.as_deref().unwrap(), now())).unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidToken);
}

#[test]
fn introspection_and_revocation() {
    let p = provider(SigningAlgorithm::ES256);
    let r = login(&p);
    let rt = r.refresh_token.clone().unwrap();
    let app = Some(basic("app", SECRET));
    let intro = |token: &str, auth: Option<&str>| block_on(p.introspect(&q(&[("token", token)]), auth, now()));
    let at = intro(&r.access_token, app.as_deref()).unwrap();
    assert_eq!(at["active"], true);
    assert_eq!(at["sub"], "8f0c-uuid");
    assert_eq!(at["username"], "alice");
    assert_eq!(intro(&rt, app.as_deref()).unwrap()["active"], true);
    assert_eq!(intro(&rt, Some(&basic("strict", SECRET))).unwrap()["active"], false);
    assert_eq!(intro("nonsense", app.as_deref()).unwrap()["active"], false);
    assert_eq!(intro(&rt, None).unwrap_err().code(), ErrorCode::InvalidClient);

    // Unknown token: still fine. Foreign client: no effect.
    block_on(p.revoke(&q(&[("token", "nonsense")]), app.as_deref(), now())).unwrap();
    block_on(p.revoke(&q(&[("token", &rt)]), Some(&basic("strict", SECRET)), now())).unwrap();
    assert_eq!(intro(&rt, app.as_deref()).unwrap()["active"], true);
    block_on(p.revoke(&q(&[("token", &rt), ("token_type_hint", "refresh_token")]), app.as_deref(), now())).unwrap();
    assert_eq!(intro(&rt, app.as_deref()).unwrap()["active"], false);
    assert_eq!(intro(&r.access_token, app.as_deref()).unwrap()["active"], false);
    assert!(refresh(&p, &rt, now()).is_err());

    // Revoking an access token revokes its family.
    let r = login(&p);
    block_on(p.revoke(&q(&[("token", &r.access_token)]), app.as_deref(), now())).unwrap();
    assert!(refresh(&p, r.refresh_token.as_deref().unwrap(), now()).is_err());
}

#[test]
fn logout_checks_hint_and_registered_redirect() {
    let p = provider(SigningAlgorithm::EdDSA);
    let r = login(&p);
    let hint = r.id_token.unwrap();
    // Expiry of the hint is ignored; state is carried.
    let ok = p
        .logout(&q(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", "https://app.example/bye"),
            ("state", "s1"),
        ]))
        .unwrap();
    assert_eq!(ok.client_id.as_deref(), Some("app"));
    assert_eq!(ok.subject.as_deref(), Some("8f0c-uuid"));
    assert_eq!(ok.redirect.unwrap().as_str(), "https://app.example/bye?state=s1");
    assert!(
        p.logout(&q(&[("id_token_hint", &hint), ("post_logout_redirect_uri", "https://app.example/bye/")])).is_err()
    );
    assert!(p.logout(&q(&[("post_logout_redirect_uri", "https://app.example/bye")])).is_err());
    assert!(p.logout(&q(&[("id_token_hint", &hint), ("client_id", "spa")])).is_err());
    assert!(p.logout(&q(&[("id_token_hint", &r.access_token)])).is_err());
    // A back-channel logout token is signed by us too, and is no ID token.
    let mut cfg = config(SigningAlgorithm::EdDSA);
    cfg.clients[0].backchannel_logout_uri = Some("https://app.example/bc".into());
    let with_bc = provider_from(cfg);
    let logout_token = with_bc.logout_token("app", "8f0c-uuid", Some("sid-1"), now()).unwrap().unwrap().token;
    let refused = with_bc.logout(&q(&[("id_token_hint", &logout_token)])).unwrap_err();
    assert!(format!("{refused:?}").contains("not an ID token"), "{refused:?}");
    let other = provider(SigningAlgorithm::EdDSA);
    assert!(other.logout(&q(&[("id_token_hint", &hint)])).is_err(), "foreign signature");
    assert_eq!(p.logout(&q(&[])).unwrap().redirect, None);
}

#[test]
fn discovery_document_content() {
    let p = provider(SigningAlgorithm::ES256);
    let d = serde_json::to_value(p.discovery()).unwrap();
    assert!(d.as_object().unwrap().values().all(|v| !v.is_null()), "no null members: {d:#}");
    assert_eq!(d["issuer"], "https://gw.example");
    assert_eq!(d["authorization_endpoint"], "https://gw.example/oauth2/authorize");
    assert_eq!(d["token_endpoint"], "https://gw.example/oauth2/token");
    assert_eq!(d["userinfo_endpoint"], "https://gw.example/oauth2/userinfo");
    assert_eq!(d["jwks_uri"], "https://gw.example/oauth2/jwks");
    assert_eq!(d["introspection_endpoint"], "https://gw.example/oauth2/introspect");
    assert_eq!(d["revocation_endpoint"], "https://gw.example/oauth2/revoke");
    assert_eq!(d["end_session_endpoint"], "https://gw.example/oauth2/logout");
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        d["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    let scopes = d["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&"openid".into()) && scopes.contains(&"org".into()));
    let claims = d["claims_supported"].as_array().unwrap();
    assert!(claims.contains(&"groups".into()) && claims.contains(&"department".into()));
    // It parses back with openidconnect's own type.
    let _: discovery::DiscoveryDocument = serde_json::from_value(d).unwrap();
    // The JWKS carries the active key.
    let jwks = serde_json::to_value(p.jwks()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], p.keys().active().kid());
}

#[test]
fn provider_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let p = provider(SigningAlgorithm::ES256);
    send_sync(&p);
    let params = q(&[]);
    send(p.token(&params, None, now()));
    send(p.token_with(&params, None, now(), &KeepSnapshot));
    send(p.userinfo("x", now()));
    send(p.introspect(&params, None, now()));
    send(p.revoke(&params, None, now()));
    send(p.verify_access_token("x", now()));
    let req = p.authorize(&q(&auth_params("app", "https://app.example/cb", &[])), now()).unwrap();
    send(p.issue_code(&req, &principal(), now()));
}

#[test]
fn bad_input_never_panics() {
    let p = provider(SigningAlgorithm::ES256);
    for junk in ["", "a.b.c", "....", "eyJhbGciOiJub25lIn0.e30.", &"x".repeat(10_000)] {
        assert!(block_on(p.verify_access_token(junk, now())).is_err());
        assert!(p.logout(&q(&[("id_token_hint", junk)])).is_err() || junk.is_empty());
        let _ = block_on(p.token(&q(&[("grant_type", "authorization_code"), ("code", junk)]), Some(junk), now()));
    }
    let e = block_on(p.token(&q(&[]), Some("Basic !!!"), now())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
}

fn provider_from(cfg: OidcConfig) -> Provider {
    let keys = KeySet::generate(SigningAlgorithm::RS256).unwrap();
    Provider::new(cfg, Url::parse("https://gw.example/").unwrap(), keys, Arc::new(MemoryGrantStore::new(10_000)))
        .unwrap()
}

fn jwt_payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn minimal_access_tokens_carry_only_rfc_9068_claims_and_userinfo_still_answers() {
    let mut cfg = config(SigningAlgorithm::RS256);
    cfg.clients[0].access_token_claims = AccessTokenClaimsMode::Minimal;
    let p = provider_from(cfg);
    let full = login(&provider(SigningAlgorithm::RS256)).access_token;
    assert_eq!(jwt_payload(&full)["groups"], serde_json::json!(["staff", "dev"]), "full stays the default");
    let minimal = login(&p).access_token;
    let claims = jwt_payload(&minimal);
    for absent in ["groups", "roles", "preferred_username"] {
        assert!(claims.get(absent).is_none(), "{absent}: {claims}");
    }
    for present in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"] {
        assert!(claims.get(present).is_some(), "{present}: {claims}");
    }
    assert!(minimal.len() < full.len());
    let info = block_on(p.userinfo(&minimal, now())).unwrap();
    assert_eq!(info["groups"], serde_json::json!(["staff", "dev"]), "the rest comes from userinfo");
}

#[test]
fn logout_tokens_are_signed_logout_jwts_with_events_sid_and_no_nonce() {
    let mut cfg = config(SigningAlgorithm::RS256);
    cfg.clients[0].backchannel_logout_uri = Some("https://app.example/bc".into());
    cfg.clients[0].frontchannel_logout_uri = Some("https://app.example/fc?x=1".into());
    let p = provider_from(cfg);
    assert!(p.logout_token("spa", "8f0c-uuid", Some("sid-1"), now()).unwrap().is_none(), "no URI, no token");
    let notice = p.logout_token("app", "8f0c-uuid", Some("sid-1"), now()).unwrap().unwrap();
    assert_eq!(notice.uri, "https://app.example/bc");
    let header = jsonwebtoken::decode_header(&notice.token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = verify_id_token_with_jsonwebtoken(&p, &notice.token);
    assert_eq!(claims["events"], serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    assert_eq!((claims["sid"].as_str(), claims["sub"].as_str()), (Some("sid-1"), Some("8f0c-uuid")));
    assert!(claims.get("nonce").is_none());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    let fc = p.frontchannel_logout_url("app", Some("sid-1")).unwrap();
    assert_eq!(fc.as_str(), "https://app.example/fc?x=1&iss=https%3A%2F%2Fgw.example&sid=sid-1");
    assert!(p.frontchannel_logout_url("spa", None).is_none());
    // The ID token carries the sid the logout token names.
    let id = jwt_payload(&login(&p).id_token.unwrap());
    assert!(id["sid"].as_str().is_some_and(|s| s.len() >= 40), "{id}");
    let discovery = serde_json::to_value(p.discovery()).unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["frontchannel_logout_session_supported"], true);
}

#[test]
fn keycloak_profile_puts_keycloaks_claims_where_keycloak_does() {
    let mut cfg = config(SigningAlgorithm::RS256);
    cfg.clients[0].claims_profile = ClaimsProfile::Keycloak;
    cfg.clients[0].client_roles =
        BTreeMap::from([("editor".to_string(), vec!["dev".to_string()]), ("x".to_string(), vec!["none".to_string()])]);
    let p = provider_from(cfg);
    // Only openid asked for: Keycloak's default scopes apply anyway.
    let code = code_for(&p, "app", "https://app.example/cb", &[("scope", "openid")]);
    let tokens = redeem(&p, &code, &[], now()).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&tokens.access_token).unwrap().typ.as_deref(), Some("JWT"));
    let at = jwt_payload(&tokens.access_token);
    assert_eq!(at["typ"], "Bearer");
    assert_eq!(at["azp"], "app");
    assert_eq!(at["acr"], "1");
    assert_eq!(at["scope"], "openid profile email");
    assert_eq!(at["realm_access"], serde_json::json!({ "roles": ["admin"] }));
    assert_eq!(at["resource_access"], serde_json::json!({ "app": { "roles": ["editor"] } }));
    assert_eq!(at["allowed-origins"], serde_json::json!(["https://app.example"]));
    assert_eq!(at["email_verified"], true);
    assert!(at.get("roles").is_none() && at.get("groups").is_none(), "{at}");
    let id = jwt_payload(tokens.id_token.as_deref().unwrap());
    assert_eq!(id["typ"], "ID");
    assert_eq!(id["email"], "alice@example.org");
    assert!(id.get("realm_access").is_none() && id.get("roles").is_none(), "roles only in the access token: {id}");
    // Told apart by the payload typ: the access token is one, the ID token is not.
    assert!(block_on(p.verify_access_token(&tokens.access_token, now())).is_ok());
    assert!(block_on(p.verify_access_token(tokens.id_token.as_deref().unwrap(), now())).is_err());
    // The refresh token looks like Keycloak's (keycloak-js decodes it) and still rotates.
    let rt = tokens.refresh_token.unwrap();
    assert_eq!(jwt_payload(&rt)["typ"], "Refresh");
    let again = refresh(&p, &rt, at_secs(60)).unwrap();
    assert_eq!(jwt_payload(&again.access_token)["acr"], "0", "a refresh later is not a fresh login");
    let intro = block_on(p.introspect(&q(&[("token", &again.access_token)]), Some(&basic("app", SECRET)), at_secs(61)));
    assert_eq!(intro.unwrap()["realm_access"], serde_json::json!({ "roles": ["admin"] }), "introspection has roles");
    assert!(refresh(&p, &rt, at_secs(62)).is_err(), "reuse refused");
}

fn at_secs(s: i64) -> OffsetDateTime {
    at(s + 600)
}

#[test]
fn response_modes_put_the_answer_where_asked() {
    let p = provider(SigningAlgorithm::RS256);
    for (mode, in_fragment) in [("query", false), ("fragment", true), ("form_post", true)] {
        let req = p.authorize(&q(&auth_params("app", "https://app.example/cb", &[("response_mode", mode)])), now());
        let url = block_on(p.issue_code(&req.unwrap(), &principal(), now())).unwrap();
        assert_eq!(url.fragment().is_some_and(|f| f.contains("code=")), in_fragment, "{mode}: {url}");
        assert_eq!(url.query().is_some_and(|f| f.contains("code=")), !in_fragment, "{mode}: {url}");
    }
    let (action, fields) = ResponseMode::form_fields(&Url::parse("https://app.example/cb?a=1#code=c&state=s").unwrap());
    assert_eq!(action.as_str(), "https://app.example/cb?a=1");
    assert_eq!(fields, vec![("code".to_string(), "c".to_string()), ("state".to_string(), "s".to_string())]);
    let bad = p.authorize(&q(&auth_params("app", "https://app.example/cb", &[("response_mode", "jwt")])), now());
    assert!(matches!(bad, Err(AuthorizeError::Redirect { .. })));
}

#[test]
fn keycloak_layout_discovery_lists_realm_endpoints() {
    let keys = KeySet::generate(SigningAlgorithm::RS256).unwrap();
    let realm = Url::parse("https://sso.example/auth/realms/corp").unwrap();
    let p = Provider::new(config(SigningAlgorithm::RS256), realm, keys, Arc::new(MemoryGrantStore::new(100)))
        .unwrap()
        .with_keycloak_layout()
        .unwrap();
    let d = serde_json::to_value(p.discovery()).unwrap();
    assert_eq!(d["issuer"], "https://sso.example/auth/realms/corp");
    assert_eq!(d["token_endpoint"], "https://sso.example/auth/realms/corp/protocol/openid-connect/token");
    assert_eq!(d["jwks_uri"], "https://sso.example/auth/realms/corp/protocol/openid-connect/certs");
    assert_eq!(
        d["check_session_iframe"],
        "https://sso.example/auth/realms/corp/protocol/openid-connect/login-status-iframe.html"
    );
    let plain = serde_json::to_value(provider(SigningAlgorithm::RS256).discovery()).unwrap();
    assert!(plain.get("check_session_iframe").is_none());
}

#[test]
fn keycloak_profile_service_accounts_are_named_like_keycloaks() {
    let mut cfg = config(SigningAlgorithm::RS256);
    let svc = cfg.clients.iter_mut().find(|c| c.client_id == "svc").unwrap();
    svc.claims_profile = ClaimsProfile::Keycloak;
    let p = provider_from(cfg);
    let form = q(&[("grant_type", "client_credentials")]);
    let r = block_on(p.token(&form, Some(&basic("svc", SECRET)), now())).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&r.access_token).unwrap().typ.as_deref(), Some("JWT"));
    let claims = jwt_payload(&r.access_token);
    assert_eq!(claims["preferred_username"], "service-account-svc");
    assert_eq!((claims["typ"].as_str(), claims["azp"].as_str()), (Some("Bearer"), Some("svc")));
    assert!(block_on(p.verify_access_token(&r.access_token, now())).is_ok());
}

#[test]
fn extra_audiences_make_aud_an_array_the_client_first() {
    let mut cfg = config(SigningAlgorithm::RS256);
    if let Some(svc) = cfg.clients.iter_mut().find(|c| c.client_id == "svc") {
        svc.audiences = vec!["orders-api".into(), "svc".into(), "orders-api".into()];
    }
    assert!(cfg.validate().is_empty(), "{:#?}", cfg.validate());
    let p = Provider::new(
        cfg,
        Url::parse("https://gw.example/").unwrap(),
        KeySet::generate(SigningAlgorithm::RS256).unwrap(),
        Arc::new(MemoryGrantStore::new(100)),
    )
    .unwrap();
    let form = q(&[("grant_type", "client_credentials"), ("scope", "groups")]);
    let r = block_on(p.token(&form, Some(&basic("svc", SECRET)), now())).unwrap();
    let payload = r.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], serde_json::json!(["svc", "orders-api"]), "duplicates left out, the client first");
    let c = block_on(p.verify_access_token(&r.access_token, now())).unwrap();
    assert_eq!(c.aud.client(), "svc");
    assert!(c.aud.contains("orders-api"));

    let mut bad = config(SigningAlgorithm::RS256);
    bad.clients[0].audiences = vec![String::new(), super::UPSTREAM_AUDIENCE.to_string()];
    let issues = format!("{:?}", bad.validate());
    assert!(issues.contains("clients[0].audiences[0]") && issues.contains("clients[0].audiences[1]"), "{issues}");
}

#[test]
fn prompt_values_and_the_idp_hint_travel_with_the_request() {
    let p = provider(SigningAlgorithm::ES256);
    let cb = "https://app.example/cb";
    let r = p
        .authorize(&q(&auth_params("app", cb, &[("prompt", "select_account login"), ("kc_idp_hint", "corp")])), now())
        .unwrap();
    assert_eq!(r.prompt, Some(Prompt::Login));
    assert_eq!(r.prompt_values, ["select_account", "login"]);
    assert_eq!(r.idp_hint.as_deref(), Some("corp"));
    let r = p.authorize(&q(&auth_params("app", cb, &[("idp", "corp")])), now()).unwrap();
    assert_eq!(r.idp_hint.as_deref(), Some("corp"), "idp is kc_idp_hint's other name");
    let long = "x".repeat(200);
    let r = p.authorize(&q(&auth_params("app", cb, &[("kc_idp_hint", &long), ("prompt", "none")])), now()).unwrap();
    assert_eq!((r.idp_hint, r.prompt_values.len()), (None, 0), "an oversized hint is none; none is not passed on");
}
