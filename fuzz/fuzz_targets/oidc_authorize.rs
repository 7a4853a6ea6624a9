//! The authorization endpoint's request validation (`federation::oidc::Provider::authorize`), fed the way the
//! gateway feeds it: the query string or form body (lossy UTF-8) decoded by `Params::parse`, against a fixed
//! provider (confidential, public, PKCE-required, group-restricted and client-credentials clients). An accepted
//! request then goes through the login decision and, for a signed-in user, code issuance.
//!
//! Checks: no panic; what is accepted names a registered client and exactly one of its registered redirect URIs,
//! has `openid` among known, allowed, unique scopes, a well-formed S256 challenge when PKCE is used (always for
//! public or PKCE-required clients), and every kept value bounded (it is stored before anyone logs in); an error
//! is only ever redirected to a registered redirect URI, with `state` echoed only when within its bound.
#![no_main]

use federation::oidc::{AuthorizeError, LoginDecision, Params};
use fedgate_fuzz::{block_on, lossy, now, oidc, principal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let provider = oidc();
    let params = Params::parse(&lossy(data));
    match provider.authorize(&params, now()) {
        Ok(req) => {
            let client = provider.client(&req.client_id).expect("accepted for a registered client");
            assert!(client.redirect_uris.contains(&req.redirect_uri));
            assert!(req.scopes.iter().any(|s| s == "openid"));
            for (i, s) in req.scopes.iter().enumerate() {
                assert!(client.scopes.contains(s), "scope {s} not allowed");
                assert!(!req.scopes[..i].contains(s), "scope {s} repeated");
            }
            if client.public || client.require_pkce {
                assert!(req.code_challenge.is_some(), "PKCE skipped");
            }
            if let Some(c) = &req.code_challenge {
                assert_eq!(c.len(), 43);
            }
            for v in [&req.state, &req.nonce, &req.login_hint].into_iter().flatten() {
                assert!(v.len() <= 1024);
            }
            assert!(req.client_id.len() <= 256 && req.redirect_uri.len() <= 2048);
            assert!(req.scopes.iter().map(|s| s.len() + 1).sum::<usize>() <= 2049);
            for auth_time in [None, Some(now()), Some(now() - time::Duration::hours(30))] {
                if let LoginDecision::Fail(url) = req.login_decision(auth_time, now()) {
                    assert!(url.as_str().starts_with(req.redirect_uri.split(['?', '#']).next().unwrap_or("")));
                }
            }
            if let Ok(url) = block_on(provider.issue_code(&req, &principal(), now())) {
                let state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
                assert_eq!(state, req.state);
            }
        }
        Err(e @ AuthorizeError::Redirect { .. }) => {
            let AuthorizeError::Redirect { redirect_uri, state, .. } = &e else { unreachable!() };
            assert!(state.as_ref().is_none_or(|s| s.len() <= 1024), "an over-long state is echoed");
            let client_id = params.get("client_id").ok().flatten().expect("redirected without a client");
            let client = provider.client(client_id).expect("redirected for an unknown client");
            assert!(client.redirect_uris.contains(redirect_uri), "error redirected to {redirect_uri}");
            if let Some(url) = e.redirect_url() {
                let echoed = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
                assert_eq!(&echoed, state);
            }
        }
        Err(e) => {
            assert!(e.redirect_url().is_none());
        }
    }
});
