//! OIDC errors: the protocol error codes of RFC 6749 §4.1.2.1 / §5.2, RFC 6750, RFC 7009 and OIDC Core §3.1.2.6,
//! and the plumbing errors (keys, storage) kept apart from them.

use std::fmt;

/// A protocol error code, spelled as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_request`: a parameter is missing, repeated, malformed or unsupported.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (HTTP 401).
    InvalidClient,
    /// `invalid_grant`: the code / refresh token is invalid, expired, revoked or was issued to another client.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant or response type.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_scope`: unknown scope, or one the client may not request.
    InvalidScope,
    /// `access_denied`: the user may not sign in to this client.
    AccessDenied,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable` (HTTP 503).
    TemporarilyUnavailable,
    /// `login_required` (OIDC): `prompt=none` and no session.
    LoginRequired,
    /// `interaction_required` (OIDC).
    InteractionRequired,
    /// `consent_required` (OIDC).
    ConsentRequired,
    /// `invalid_token` (RFC 6750 §3.1): the bearer token is invalid or expired (HTTP 401).
    InvalidToken,
    /// `insufficient_scope` (RFC 6750 §3.1, HTTP 403).
    InsufficientScope,
    /// `unsupported_token_type` (RFC 7009 §2.2.1).
    UnsupportedTokenType,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::LoginRequired => "login_required",
            Self::InteractionRequired => "interaction_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
        }
    }

    /// The HTTP status a JSON endpoint answers with for this code (RFC 6749 §5.2, RFC 6750 §3.1).
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope | Self::AccessDenied => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error with its human-readable `error_description` (never containing secrets or tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct ProtocolError {
    /// The code.
    pub code: ErrorCode,
    /// The `error_description`.
    pub description: String,
}

impl ProtocolError {
    /// Builds an error.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    /// The RFC 6749 §5.2 JSON body: `{"error": …, "error_description": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code.as_str(), "error_description": self.description })
    }
}

/// Errors from the signing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key directory failed.
    #[error("key file: {0}")]
    File(#[from] crate::key_file::KeyFileError),
    /// A key file holds no PKCS#8 PEM block (`-----BEGIN PRIVATE KEY-----`).
    #[error("key file {path} holds no PKCS#8 PEM private key: {source}")]
    Pem {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A key file is not a usable PKCS#8 PEM key.
    #[error("key file {path} is not a usable PKCS#8 RSA, P-256 or Ed25519 private key: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why (never the key bytes).
        reason: String,
    },
    /// Key generation failed.
    #[error("generating a {0} key failed")]
    Generate(&'static str),
    /// Signing failed.
    #[error("signing with key {kid} failed")]
    Sign {
        /// The key id.
        kid: String,
    },
    /// openidconnect could not build or sign an ID token with the key.
    #[error("signing an ID token with key {kid} failed: {source}")]
    IdToken {
        /// The key id.
        kid: String,
        /// The cause.
        #[source]
        source: openidconnect::JsonWebTokenError,
    },
    /// Serializing a token failed.
    #[error("serializing a token failed: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// Errors from a grant store. The gateway carries it as it is (with its cause) rather than as a string.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store could not be reached or failed; the cause is the backend's own error.
    #[error("grant store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// The backing store failed with `cause`.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Unavailable(cause.into())
    }
}

/// Why a token-endpoint-style call (token, introspect, revoke, userinfo) failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A protocol error to send to the client as-is.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The grant store failed; answer `temporarily_unavailable`.
    #[error("grant store failed")]
    Store(#[from] StoreError),
    /// Signing failed; answer `server_error`.
    #[error("token signing failed")]
    Keys(#[from] KeyError),
}

impl TokenError {
    /// Shorthand for a protocol error.
    pub fn protocol(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::Protocol(ProtocolError::new(code, description))
    }

    /// The code to put on the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Protocol(p) => p.code,
            Self::Store(_) => ErrorCode::TemporarilyUnavailable,
            Self::Keys(_) => ErrorCode::ServerError,
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// The JSON error body (plumbing errors get a generic description; log `self` for the detail).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Protocol(p) => p.to_json(),
            Self::Store(_) => ProtocolError::new(self.code(), "session store unavailable; try again shortly").to_json(),
            other => ProtocolError::new(other.code(), "the server could not complete the request").to_json(),
        }
    }
}

/// Result alias for token-endpoint-style calls.
pub type Result<T, E = TokenError> = std::result::Result<T, E>;
