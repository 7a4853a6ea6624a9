//! The registered clients and client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3: `client_secret_basic`, `client_secret_post`, and `none` for public clients).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::config::ClientConfig;
use super::error::{ErrorCode, TokenError};
use super::params::Params;
use crate::Secret;

/// A registered client with its secret resolved.
#[derive(Debug, Clone)]
pub struct Client {
    /// The configuration entry.
    pub config: ClientConfig,
    secret_digest: Option<[u8; 32]>,
}

impl Client {
    /// Resolves the client's secret (`client_secret` or the trimmed content of `client_secret_file`).
    pub fn new(config: ClientConfig) -> std::io::Result<Self> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => Some(Secret::from_file(path).map_err(|e| e.source)?),
            (None, None) => None,
        };
        let secret_digest = secret.filter(|_| !config.public).map(|s| digest(s.expose().as_bytes()));
        Ok(Self { config, secret_digest })
    }

    /// The `client_id`.
    pub fn id(&self) -> &str {
        &self.config.client_id
    }

    /// Whether the client is registered for `grant`.
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.config.grant_types.iter().any(|g| g == grant)
    }

    /// Whether the client is public (no secret).
    pub fn is_public(&self) -> bool {
        self.config.public
    }

    /// Constant-time check of a presented secret (both sides hashed first, so lengths leak nothing).
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_digest {
            Some(d) => fedgate_types::secure_eq(d, digest(presented.as_bytes())),
            None => false,
        }
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The clients by `client_id`.
pub type Clients = HashMap<String, Client>;

fn invalid_client(why: &str) -> TokenError {
    TokenError::protocol(ErrorCode::InvalidClient, why)
}

/// Decodes an `Authorization: Basic` header: base64 of `urlencode(id):urlencode(secret)` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Result<(String, String), TokenError> {
    let (scheme, rest) = header.trim().split_once(' ').ok_or_else(|| invalid_client("malformed authorization"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_client("unsupported authorization scheme"));
    }
    let raw = STANDARD.decode(rest.trim()).map_err(|_| invalid_client("malformed basic credentials"))?;
    let text = String::from_utf8(raw).map_err(|_| invalid_client("malformed basic credentials"))?;
    let (id, secret) = text.split_once(':').ok_or_else(|| invalid_client("malformed basic credentials"))?;
    let decode = |s: &str| -> Result<String, TokenError> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid_client("malformed basic credentials"))
    };
    Ok((decode(id)?, decode(secret)?))
}

/// The `client_id` a request claims, from `Authorization: Basic` or else the `client_id` parameter, before any
/// secret is checked (for counting failed authentications per client). `None` if it names none readably.
pub fn claimed_id(params: &Params, authorization: Option<&str>) -> Option<String> {
    match authorization {
        Some(h) => parse_basic(h).ok().map(|(id, _)| id),
        None => params.get("client_id").ok().flatten().map(str::to_string),
    }
}

/// Authenticates the client of a token-endpoint request. Exactly one method may be used (RFC 6749 §2.3).
pub fn authenticate<'c>(
    clients: &'c Clients,
    params: &Params,
    authorization: Option<&str>,
) -> Result<&'c Client, TokenError> {
    let form_id = params.get("client_id")?;
    let form_secret = params.get("client_secret")?;
    let basic = authorization.filter(|h| !h.trim().is_empty()).map(parse_basic).transpose()?;
    let (client_id, secret) = match (basic, form_secret) {
        (Some(_), Some(_)) => {
            return Err(TokenError::protocol(
                ErrorCode::InvalidRequest,
                "use one client authentication method, not both",
            ));
        }
        (Some((id, secret)), None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(invalid_client("client_id does not match the authenticated client"));
            }
            (id, Some(secret))
        }
        (None, secret) => match form_id {
            Some(id) => (id.to_string(), secret.map(str::to_string)),
            None => return Err(invalid_client("client authentication required")),
        },
    };
    let client = clients.get(&client_id).ok_or_else(|| invalid_client("client authentication failed"))?;
    match (client.is_public(), secret) {
        (true, None) => Ok(client),
        (true, Some(_)) => Err(invalid_client("a public client has no secret")),
        (false, Some(s)) if client.secret_matches(&s) => Ok(client),
        (false, _) => Err(invalid_client("client authentication failed")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn clients() -> Clients {
        let conf = ClientConfig {
            client_id: "a b:c".into(),
            client_secret: Some(crate::Secret::new("s3cret:+/%")),
            ..ClientConfig::default()
        };
        let public = ClientConfig { client_id: "spa".into(), public: true, ..ClientConfig::default() };
        [conf, public].into_iter().map(|c| (c.client_id.clone(), Client::new(c).unwrap())).collect()
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect())
    }

    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
    }

    #[test]
    fn basic_credentials_are_form_urlencoded() {
        let c = clients();
        let got = authenticate(&c, &params(&[]), Some(&basic("a b:c", "s3cret:+/%"))).unwrap();
        assert_eq!(got.id(), "a b:c");
        let wrong = authenticate(&c, &params(&[]), Some(&basic("a b:c", "s3cret:+/"))).unwrap_err();
        assert_eq!(wrong.code(), ErrorCode::InvalidClient);
        assert_eq!(wrong.http_status(), 401);
    }

    #[test]
    fn post_none_and_mixed_methods() {
        let c = clients();
        let ok = authenticate(&c, &params(&[("client_id", "a b:c"), ("client_secret", "s3cret:+/%")]), None);
        assert_eq!(ok.unwrap().id(), "a b:c");
        let none = authenticate(&c, &params(&[("client_id", "a b:c")]), None).unwrap_err();
        assert_eq!(none.code(), ErrorCode::InvalidClient);
        assert_eq!(authenticate(&c, &params(&[("client_id", "spa")]), None).unwrap().id(), "spa");
        let spa_secret = authenticate(&c, &params(&[("client_id", "spa"), ("client_secret", "x")]), None);
        assert_eq!(spa_secret.unwrap_err().code(), ErrorCode::InvalidClient);
        let both = authenticate(&c, &params(&[("client_secret", "x")]), Some(&basic("a b:c", "s3cret:+/%")));
        assert_eq!(both.unwrap_err().code(), ErrorCode::InvalidRequest);
        let unknown = authenticate(&c, &params(&[("client_id", "nope"), ("client_secret", "x")]), None);
        assert_eq!(unknown.unwrap_err().code(), ErrorCode::InvalidClient);
    }
}
