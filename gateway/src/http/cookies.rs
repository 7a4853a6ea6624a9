//! Reading and writing the gateway's cookies with the right attributes: `HttpOnly`, `SameSite`, `Path=/`,
//! `Secure` whenever the public URL is https.

use axum::http::{HeaderMap, HeaderValue, header};

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
    /// `SameSite` value: `Lax` or `Strict`.
    pub same_site: &'a str,
    /// `Domain`, for cookies shared with subdomains.
    pub domain: Option<&'a str>,
    /// `Max-Age` in seconds; `None` for a browser-session cookie.
    pub max_age: Option<u64>,
}

/// A `Set-Cookie` header value.
pub fn set(name: &str, value: &str, attrs: CookieAttrs<'_>) -> Option<HeaderValue> {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite={}", attrs.same_site);
    if attrs.secure {
        s.push_str("; Secure");
    }
    if let Some(d) = attrs.domain {
        s.push_str("; Domain=");
        s.push_str(d);
    }
    if let Some(age) = attrs.max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&s).ok()
}

/// A `Set-Cookie` header value that deletes the cookie.
pub fn clear(name: &str, attrs: CookieAttrs<'_>) -> Option<HeaderValue> {
    set(name, "", CookieAttrs { max_age: Some(0), ..attrs })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; fedgate_session=abc; b=2"));
        assert_eq!(get(&h, "fedgate_session"), Some("abc"));
        assert_eq!(get(&h, "missing"), None);
        let v =
            set("s", "v", CookieAttrs { secure: true, same_site: "Lax", domain: Some("example.com"), max_age: None })
                .unwrap();
        assert_eq!(v.to_str().unwrap(), "s=v; Path=/; HttpOnly; SameSite=Lax; Secure; Domain=example.com");
    }
}
