//! Request parameters as received (query string or form body), with RFC 6749 §3.1 rules: a parameter sent
//! without a value counts as omitted, and a repeated parameter is an error.

use super::error::{ErrorCode, ProtocolError};

/// The decoded name/value pairs of a request, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps already-decoded pairs (e.g. axum's `Form<Vec<(String, String)>>`).
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Decodes an `application/x-www-form-urlencoded` string (a query string or a form body).
    pub fn parse(encoded: &str) -> Self {
        Self(url::form_urlencoded::parse(encoded.as_bytes()).into_owned().collect())
    }

    /// The value of `name`; `None` when absent or empty; `invalid_request` when repeated.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ProtocolError> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == name && !v.is_empty() {
                if found.is_some() {
                    return Err(ProtocolError::new(ErrorCode::InvalidRequest, format!("{name} is repeated")));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// Like [`Params::get`] but `invalid_request` when absent.
    pub fn require(&self, name: &str) -> Result<&str, ProtocolError> {
        self.get(name)?.ok_or_else(|| ProtocolError::new(ErrorCode::InvalidRequest, format!("{name} is missing")))
    }
}

impl Params {
    /// The same parameters with every `from` renamed to `to` (e.g. Keycloak's legacy logout `redirect_uri`).
    #[must_use]
    pub fn renamed(mut self, from: &str, to: &str) -> Self {
        for (k, _) in &mut self.0 {
            if k == from {
                *k = to.to_string();
            }
        }
        self
    }
}

impl From<Vec<(String, String)>> for Params {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
}
