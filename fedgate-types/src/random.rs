//! Unguessable values (session ids, CSRF tokens, authorization codes, refresh tokens, XML IDs) from the operating
//! system's CSPRNG through aws-lc-rs, and the constant-time comparison that checks them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fills `buf` with random bytes. If the system generator fails there is no safe way to go on issuing codes,
/// tokens or IDs (they would be predictable), so the process stops instead of returning zeros.
pub fn fill(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        tracing::error!("the system random number generator failed; stopping rather than issuing predictable values");
        std::process::abort();
    }
}

/// A fresh 256-bit random token, base64url without padding (43 characters).
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time that depends only on their lengths, never on where they differ.
pub fn secure_eq(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    use subtle::ConstantTimeEq as _;
    let (a, b) = (a.as_ref(), b.as_ref());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(secure_eq(&a, a.clone()));
        assert!(!secure_eq(&a, &b));
        assert!(!secure_eq("abc", "abcd"));
        assert!(secure_eq([1u8, 2], [1u8, 2]));
    }
}
