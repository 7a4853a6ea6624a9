//! JWTs presented to fedgate: bearer access tokens at the proxy and userinfo (`Provider::verify_access_token`,
//! `Provider::userinfo`), `id_token_hint` at RP-initiated logout (`Provider::logout`), and tokens at
//! introspection. The key set is fixed (ES256 active, RS256 previous) and so is `now`.
//!
//! The first byte picks the mode: 0 — the rest is the token as received (a `Bearer` header value); 1 — the rest
//! is a claims JSON the harness signs with the active key under an `at+jwt` header (so the code after the
//! signature check sees arbitrary claims); 2 — `header JSON \n claims JSON`, `$KID` replaced by the active key id,
//! signed likewise.
//!
//! Checks: no panic; an accepted access token has our issuer, is unexpired at `now`, and was signed by one of our
//! keys with its own algorithm; userinfo never answers for a token verification refused.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use federation::oidc::AccessTokenClaims;
use fedgate_fuzz::{ISSUER, SECRET, block_on, lossy, now, oidc, params};
use libfuzzer_sys::fuzz_target;

fn sign(header: &str, claims: &[u8]) -> String {
    let keys = oidc().keys();
    let key = keys.active();
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = key.sign_bytes(input.as_bytes()).expect("signing");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn check(claims: &AccessTokenClaims) {
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.exp > now().unix_timestamp());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let provider = oidc();
    let kid = provider.keys().active().kid().to_string();
    let token = match mode % 3 {
        0 => {
            // Header values reach us as visible ASCII; the proxy trims after `Bearer `.
            let Ok(t) = std::str::from_utf8(rest) else { return };
            t.trim().to_string()
        }
        1 => sign(&format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"at+jwt"}}"#), rest),
        _ => {
            let text = lossy(rest);
            let (h, c) = text.split_once('\n').unwrap_or((&text, "{}"));
            sign(&h.replace("$KID", &kid), c.as_bytes())
        }
    };
    let verified = block_on(provider.verify_access_token(&token, now()));
    if let Ok(c) = &verified {
        check(c);
        if mode % 3 == 0 {
            let header = jsonwebtoken::decode_header(&token).expect("an accepted token has a header");
            let keys = provider.keys();
            let key = keys.find(header.kid.as_deref().expect("a kid")).expect("one of our keys");
            assert_eq!(header.alg, key.jwt_algorithm(), "algorithm confusion");
        }
    }
    if let Ok(info) = block_on(provider.userinfo(&token, now())) {
        assert!(verified.is_ok(), "userinfo for a token that does not verify");
        assert!(info.get("sub").is_some());
    }
    let _ = provider.logout(&params(&[("id_token_hint", &token), ("post_logout_redirect_uri", "https://app.example/bye")]));
    let _ = block_on(provider.introspect(
        &params(&[("token", &token), ("client_id", "app"), ("client_secret", SECRET)]),
        None,
        now(),
    ));
});
