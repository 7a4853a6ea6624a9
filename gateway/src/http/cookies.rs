//! Reading and writing the gateway's cookies; the `cookie` crate writes them. Every cookie the gateway sets is
//! `HttpOnly`, has `Path=/` and a `SameSite`, and is `Secure` whenever the public URL is https; names, values and
//! domains are checked first, so nothing in them can add an attribute.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::Cookie;
pub use cookie::SameSite;

/// The CSRF cookie paired with the login form (double-submit).
pub const CSRF_COOKIE: &str = "fedgate_csrf";

/// The value of cookie `name` in the request, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Attributes of a cookie to set.
#[derive(Debug, Clone, Copy)]
pub struct CookieAttrs<'a> {
    /// `Secure`.
    pub secure: bool,
    /// `SameSite`.
    pub same_site: SameSite,
    /// `Domain`, for cookies shared with subdomains.
    pub domain: Option<&'a str>,
    /// `Max-Age` in seconds; `None` for a browser-session cookie.
    pub max_age: Option<u64>,
}

/// A `Set-Cookie` header value: `name=value; HttpOnly; SameSite=…[; Secure]; Path=/[; Domain=…][; Max-Age=…]`.
///
/// `None`, with an error logged, when the name is not an RFC 9110 token, the value has anything but RFC 6265
/// cookie-octets (no `;`, `,`, space, quote, backslash or control character) or the domain is not a host name.
pub fn set(name: &str, value: &str, attrs: CookieAttrs<'_>) -> Option<HeaderValue> {
    if !is_token(name) || !value.bytes().all(is_cookie_octet) || !attrs.domain.is_none_or(is_domain) {
        tracing::error!(cookie = ?name, "cookie not set: its name, value or domain cannot be written in Set-Cookie");
        return None;
    }
    let mut cookie =
        Cookie::build((name, value)).path("/").http_only(true).same_site(attrs.same_site).secure(attrs.secure);
    if let Some(domain) = attrs.domain {
        cookie = cookie.domain(domain);
    }
    if let Some(age) = attrs.max_age {
        cookie = cookie.max_age(time::Duration::seconds(i64::try_from(age).unwrap_or(i64::MAX)));
    }
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// A `Set-Cookie` header value that deletes the cookie (empty value, `Max-Age=0`, the same attributes).
pub fn clear(name: &str, attrs: CookieAttrs<'_>) -> Option<HeaderValue> {
    set(name, "", CookieAttrs { max_age: Some(0), ..attrs })
}

/// RFC 9110 §5.6.2 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 §4.1.1 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A host name (a leading dot, which browsers ignore, allowed).
fn is_domain(d: &str) -> bool {
    let host = d.strip_prefix('.').unwrap_or(d);
    !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LAX: CookieAttrs<'static> =
        CookieAttrs { secure: false, same_site: SameSite::Lax, domain: None, max_age: None };

    #[test]
    fn reads_cookies() {
        let h = headers(&["a=1; fedgate_session=abc; b=2"]);
        assert_eq!(get(&h, "fedgate_session"), Some("abc"));
        assert_eq!(get(&h, "missing"), None);
    }

    #[test]
    fn writes_hardened_cookies() {
        let attrs = CookieAttrs { secure: true, domain: Some("example.com"), ..LAX };
        let v = set("s", "v", attrs).unwrap();
        assert_eq!(v.to_str().unwrap(), "s=v; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com");
        let strict = CookieAttrs { same_site: SameSite::Strict, max_age: Some(60), ..LAX };
        assert_eq!(
            set("c", "t", strict).unwrap().to_str().unwrap(),
            "c=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        let gone = clear("s", LAX).unwrap();
        assert_eq!(gone.to_str().unwrap(), "s=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    }

    #[test]
    fn nothing_can_add_an_attribute_or_break_the_header() {
        for value in ["a; Domain=evil.example", "a,b", "a b", "a\"", "a\\b", "a\r\nSet-Cookie: x=1", "a\0", "é"] {
            assert!(set("s", value, LAX).is_none(), "{value:?}");
        }
        for name in ["", "a b", "a;b", "a=b", "a\n", "(s)"] {
            assert!(set(name, "v", LAX).is_none(), "{name:?}");
        }
        for domain in ["", ".", "example.com; Secure", "exa mple.com", "example.com\r\n"] {
            assert!(set("s", "v", CookieAttrs { domain: Some(domain), ..LAX }).is_none(), "{domain:?}");
        }
        assert!(set("s", "v", CookieAttrs { domain: Some(".example.com"), ..LAX }).is_some());
        assert!(set("s", "!#$%&'()*+-./09:<=>?@AZ[]^_`az{|}~", LAX).is_some(), "every cookie-octet");
    }
}
