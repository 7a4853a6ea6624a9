//! RSA-SHA1 signing, for the legacy SPs that ask for it (`signature_algorithm = "rsa-sha1"`).
//!
//! aws-lc-rs (fedgate's one crypto library) signs RSA with SHA-2 only. Rather than bring in a second RSA
//! implementation (the RustCrypto `rsa` crate has an open timing advisory, RUSTSEC-2023-0071), this calls the same
//! AWS-LC library through `aws-lc-sys`, the FFI layer aws-lc-rs itself is built on: `EVP_DigestSign` with SHA-1,
//! AWS-LC's constant-time RSA. This is the only `unsafe` code in fedgate.
#![allow(unsafe_code)]

use aws_lc_sys as sys;

/// RSA PKCS#1 v1.5 with SHA-1 over `message`, with the private key given as PKCS#8 DER.
pub fn sign(pkcs8: &[u8], message: &[u8]) -> Result<Vec<u8>, &'static str> {
    // SAFETY: every pointer passed to AWS-LC is either one it returned (checked for null before use and freed
    // exactly once below) or points into a live Rust slice for the length given. `sig` is allocated with
    // EVP_PKEY_size bytes, the most EVP_DigestSign writes for this key, and truncated to the length it reports.
    unsafe {
        let mut cbs = sys::CBS { data: pkcs8.as_ptr(), len: pkcs8.len() };
        let pkey = sys::EVP_parse_private_key(&mut cbs);
        if pkey.is_null() {
            return Err("the signing key is not a PKCS#8 private key");
        }
        let ctx = sys::EVP_MD_CTX_new();
        if ctx.is_null() {
            sys::EVP_PKEY_free(pkey);
            return Err("out of memory");
        }
        let size = usize::try_from(sys::EVP_PKEY_size(pkey)).unwrap_or(0);
        let mut sig = vec![0u8; size];
        let mut len = size;
        let ok = size > 0
            && sys::EVP_DigestSignInit(ctx, std::ptr::null_mut(), sys::EVP_sha1(), std::ptr::null_mut(), pkey) == 1
            && sys::EVP_DigestSign(ctx, sig.as_mut_ptr(), &mut len, message.as_ptr(), message.len()) == 1;
        sys::EVP_MD_CTX_free(ctx);
        sys::EVP_PKEY_free(pkey);
        if !ok || len > size {
            return Err("AWS-LC did not sign");
        }
        sig.truncate(len);
        Ok(sig)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};

    #[test]
    fn signatures_verify_with_aws_lc_rs_and_fail_when_tampered() {
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = key.as_der().unwrap();
        let sig = super::sign(pkcs8.as_ref(), b"signed info").unwrap();
        assert_eq!(sig.len(), 256);
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, key.public_key().as_ref());
        public.verify(b"signed info", &sig).unwrap();
        assert!(public.verify(b"signed inf0", &sig).is_err());
        assert!(super::sign(b"not a key", b"x").is_err());
    }
}
