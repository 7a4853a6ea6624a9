//! Configuration files: `gateway::config::load_str` (figment: defaults, then the TOML; then `validate`, which
//! collects every problem) on arbitrary text.
//!
//! Checks: no panic (a bad file is a list of problems, never a crash); an error names at least one problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match gateway::config::load_str(text) {
        Ok(cfg) => {
            // `Debug` is what `debug!(?cfg)` logs (secrets redacted); it must not panic either.
            let _ = format!("{cfg:?}");
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            // Problems are rendered for people; rendering must not panic either.
            let _ = e.to_string();
        }
    }
});
