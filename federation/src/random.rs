//! Random bytes for codes, tokens and XML IDs, from the operating system via aws-lc-rs.

/// Fills `buf` with random bytes. If the system generator fails there is no safe way to go on issuing codes,
/// tokens or IDs (they would be predictable), so the process stops instead of returning zeros.
pub(crate) fn fill(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        tracing::error!("the system random number generator failed; stopping rather than issuing predictable values");
        std::process::abort();
    }
}
