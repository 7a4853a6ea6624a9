//! The token endpoint (`Provider::token`: client authentication by Basic header or form, then the
//! authorization-code, refresh-token and client-credentials grants) and its neighbours that take the same form and
//! header: introspection and revocation. Input: the first byte picks the endpoint (`t`oken, `i`ntrospect,
//! `r`evoke, others by value), then the first line is the `Authorization` header (empty = none) and the rest the
//! form body (lossy UTF-8, `Params::parse`). Placeholders let the fuzzer use live grants: `$CODE` (a
//! fresh code for `app`, PKCE challenge of the fixture verifier), `$SPACODE` (same for the public `spa`),
//! `$REFRESH`, `$AT` and `$IDT` (a refresh, access and ID token from a fresh code flow).
//!
//! Checks: no panic; tokens are issued only to an authenticated registered client allowed the grant, and an access
//! token issued verifies.
#![no_main]

use federation::oidc::Params;
use fedgate_fuzz::{block_on, fresh_code, fresh_tokens, lossy, now, oidc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else { return };
    let text = lossy(data);
    let (auth, body) = text.split_once('\n').unwrap_or(("", &text));
    let mut body = body.to_string();
    if body.contains("$CODE") {
        body = body.replace("$CODE", &fresh_code("app"));
    }
    if body.contains("$SPACODE") {
        body = body.replace("$SPACODE", &fresh_code("spa"));
    }
    if body.contains("$REFRESH") || body.contains("$AT") || body.contains("$IDT") {
        let t = fresh_tokens();
        body = body
            .replace("$REFRESH", t.refresh_token.as_deref().unwrap_or_default())
            .replace("$AT", &t.access_token)
            .replace("$IDT", t.id_token.as_deref().unwrap_or_default());
    }
    let authorization = (!auth.is_empty()).then_some(auth);
    let provider = oidc();
    let params = Params::parse(&body);
    match which {
        b't' | b'0'..=b'9' => {
            if let Ok(t) = block_on(provider.token(&params, authorization, now())) {
                let claims = block_on(provider.verify_access_token(&t.access_token, now()))
                    .expect("an access token just issued verifies");
                let client = provider.client(&claims.client_id).expect("issued to a registered client");
                let grant = params.get("grant_type").ok().flatten().expect("a grant_type");
                assert!(client.grant_types.iter().any(|g| g == grant), "{grant} not allowed for the client");
                assert!(!client.public || grant != "client_credentials");
            }
        }
        b'i' | b'A'..=b'Z' => {
            if let Ok(v) = block_on(provider.introspect(&params, authorization, now())) {
                assert!(v.get("active").and_then(|a| a.as_bool()).is_some());
            }
        }
        _ => {
            let _ = block_on(provider.revoke(&params, authorization, now()));
        }
    }
});
