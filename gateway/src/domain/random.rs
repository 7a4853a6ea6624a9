//! Unguessable identifiers (session ids, CSRF tokens) from the operating system's CSPRNG via aws-lc-rs.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 256 random bits, base64url-encoded (43 characters).
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    // The system RNG only fails if the OS has no entropy source at all; then nothing secure can be done.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("the system random number generator failed; refusing to issue a predictable token");
        std::process::abort();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time comparison of two secrets.
pub fn secure_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(secure_eq(&a, &a.clone()));
        assert!(!secure_eq(&a, &b));
        assert!(!secure_eq("abc", "abcd"));
    }
}
