//! The proxy's canonical path (`gateway::http::path::canonicalize`), which every routing, public-path, role and
//! forward-auth decision is made on and which is forwarded upstream. Input: the path as raw UTF-8 (hyper and the
//! forward-auth headers only hand it over as a `&str`).
//!
//! Checks, for every path it accepts: the output is absolute, ASCII, and canonical again (canonicalizing it gives
//! the same path and the same flags); it has no `.` or `..` segment (also after one percent-decoding, as an
//! upstream reads it, and ignoring `;` parameters, as Tomcat does), no `//`, no encoded backslash (`%5C`) or
//! backslash, no NUL (raw or `%00`); an encoded slash (`%2F`) appears only when reported as `encoded_slash`, and
//! `;` only when reported as `parameters` (routes must opt in to both); canonicalizing the output reports exactly
//! what the output holds.
#![no_main]

use gateway::http::path::canonicalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(c) = canonicalize(raw) else { return };
    let p: &str = &c.path;
    assert!(p.starts_with('/'), "{raw:?} → {p:?}: not absolute");
    assert!(p.is_ascii(), "{raw:?} → {p:?}: not ASCII");
    assert!(!p.contains("//"), "{raw:?} → {p:?}: //");
    let upper = p.to_ascii_uppercase();
    assert!(!upper.contains("%5C") && !p.contains('\\'), "{raw:?} → {p:?}: backslash");
    assert!(!upper.contains("%00") && !p.contains('\0'), "{raw:?} → {p:?}: NUL");
    // The flags describe the request as sent (a `%2F` that a later `..` removed still needs the route's consent),
    // so they may be set when the output no longer shows what set them, never the other way round.
    assert!(!upper.contains("%2F") || c.encoded_slash, "{raw:?} → {p:?}: encoded slash not reported");
    assert!(!p.contains(';') || c.parameters, "{raw:?} → {p:?}: parameters not reported");
    for seg in p.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or(seg);
        assert!(name != "." && name != "..", "{raw:?} → {p:?}: dot segment");
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        assert!(decoded != "." && decoded != "..", "{raw:?} → {p:?}: encoded dot segment");
    }
    let again = canonicalize(p).unwrap_or_else(|e| panic!("{raw:?} → {p:?}, which is refused: {e}"));
    assert_eq!(again.path, p, "{raw:?}: not idempotent");
    assert_eq!((again.encoded_slash, again.parameters), (upper.contains("%2F"), p.contains(';')), "{raw:?}: flags");
});
