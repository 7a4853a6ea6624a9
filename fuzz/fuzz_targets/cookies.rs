//! The gateway's cookie parsing (`gateway::http::cookies::get`) and the session-id extraction every request goes
//! through (`state::sign_in::current_session`: the session cookie's value, used only when it is 43 characters).
//! Each input line is one `Cookie` header (those `http` accepts as a header value); the first line also names a
//! cookie to look up.
//!
//! Checks: no panic; a value found never contains `;`, and `name=value` occurs in one of the headers.
#![no_main]

use gateway::http::cookies::{self, CSRF_COOKIE};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let name = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, v);
        }
    }
    let texts: Vec<&str> = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let [csrf, csrf_host] = CSRF_COOKIE.names();
    for n in [name.as_str(), "fedgate_session", csrf, csrf_host] {
        if let Some(v) = cookies::get(&headers, n) {
            assert!(!v.contains(';'), "cookie value {v:?} spans a ';'");
            let pair = format!("{n}={v}");
            assert!(texts.iter().any(|t| t.contains(&pair)), "{pair:?} is not in the headers");
            // The session lookup's own guard.
            if v.len() == 43 {
                assert!(v.is_char_boundary(43));
            }
        }
    }
});
