//! Reading and writing the gateway's cookies, with the `cookie` crate. Every cookie the gateway sets is `HttpOnly`,
//! has `Path=/` and a `SameSite`, and is `Secure` whenever the public URL is https; names, values and domains are
//! checked first, so nothing in them can add an attribute. The `Cookie` header is read on every proxied request:
//! reading borrows from the headers, allocates nothing, and parses only the pairs that can be the one asked for.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::Cookie;
pub use cookie::SameSite;

/// The prefix of a cookie only the host that set it can have set (RFC 6265bis §4.1.3.2).
pub const HOST_PREFIX: &str = "__Host-";

/// A cookie only the gateway's own host sets and reads. Over https its name carries the `__Host-` prefix (RFC 6265bis
/// §4.1.3.2): browsers keep such a cookie only when this host set it, `Secure`, with `Path=/` and no `Domain`, so a
/// sibling subdomain cannot plant one in the browser (cookie tossing) to pass a double-submit or binding check.
#[derive(Debug, Clone, Copy)]
pub struct HostCookie {
    plain: &'static str,
    prefixed: &'static str,
}

impl HostCookie {
    /// The cookie's name: `__Host-` prefixed when `secure` (the public URL is https).
    pub fn name(self, secure: bool) -> &'static str {
        if secure { self.prefixed } else { self.plain }
    }

    /// Both spellings, for taking the cookie out of proxied requests whichever one a browser sends.
    pub fn names(self) -> [&'static str; 2] {
        [self.plain, self.prefixed]
    }
}

/// The CSRF cookie paired with the login form (double-submit).
pub const CSRF_COOKIE: HostCookie = HostCookie { plain: "fedgate_csrf", prefixed: "__Host-fedgate_csrf" };

/// The cookie binding a sign-in at an upstream provider to the browser that started it.
pub const UPSTREAM_BINDING_COOKIE: HostCookie =
    HostCookie { plain: "fedgate_upstream", prefixed: "__Host-fedgate_upstream" };

/// The value of cookie `name` in the request: the first pair sent as `name=value`, reading every `Cookie` header in
/// order. Headers that are not visible ASCII and pairs without a name or an `=` are skipped.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    // Read by hand rather than with `Cookie::parse`: this runs on every proxied request, and the crate costs about
    // 700 instructions a pair for what is a split and two prefix checks (the crate writes our `Set-Cookie`s).
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| value_if_named(pair, name))
}

/// The value of `pair` if it is named `name` and was sent as `name=value`, with nothing around the `=`.
///
/// Blanks around `=` are not allowed there by RFC 6265 §4.2.1, and such a pair is not read: the proxy takes our
/// cookies out of requests by their untrimmed names, so what is read as ours must be exactly what it removes.
fn value_if_named<'a>(pair: &'a str, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    let value = pair.trim_start_matches([' ', '\t']).strip_prefix(name)?.strip_prefix('=')?;
    (!value.starts_with([' ', '\t'])).then(|| value.trim_end_matches([' ', '\t']))
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

/// A `Set-Cookie` header value for the one cookie scripts may read: without `HttpOnly`, on `path`. Only Keycloak's
/// `KEYCLOAK_SESSION` is set this way (hashes of token `sid`s for the realm's session-status iframe, never anything
/// that authenticates); same checks as [`set`].
pub fn set_script_readable(name: &str, value: &str, path: &str, attrs: CookieAttrs<'_>) -> Option<HeaderValue> {
    let path_ok = path.starts_with('/') && path.bytes().all(|b| is_cookie_octet(b) && b != b';');
    if !is_token(name) || !value.bytes().all(is_cookie_octet) || !path_ok || !attrs.domain.is_none_or(is_domain) {
        tracing::error!(cookie = ?name, "cookie not set: its name, value, path or domain cannot be written");
        return None;
    }
    let mut cookie =
        Cookie::build((name, value)).path(path).http_only(false).same_site(attrs.same_site).secure(attrs.secure);
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
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(get(&headers(&["s="]), "s"), Some(""));
        assert_eq!(get(&headers(&["s=a=b"]), "s"), Some("a=b"), "the value runs past a second '='");
        assert_eq!(get(&headers(&[r#"s="q""#]), "s"), Some(r#""q""#), "quotes are part of the value");
    }

    #[test]
    fn names_sharing_a_prefix_are_different_cookies() {
        let h = headers(&["fedgate_session_old=1; fedgate_sessionx=2; fedgate_session=3"]);
        assert_eq!(get(&h, "fedgate_session"), Some("3"));
        assert_eq!(get(&h, "fedgate_session_old"), Some("1"));
        assert_eq!(get(&h, "fedgate_sess"), None);
    }

    #[test]
    fn the_first_pair_wins_across_headers() {
        let h = headers(&["a=1; s=first", "s=second"]);
        assert_eq!(get(&h, "s"), Some("first"));
        assert_eq!(get(&headers(&["a=1", "s=second; s=third"]), "s"), Some("second"));
    }

    #[test]
    fn malformed_pairs_and_headers_are_skipped() {
        let mut h = headers(&[";;", "junk; =x; s; ;  ; S=upper"]);
        h.append(header::COOKIE, HeaderValue::from_bytes(b"s=\xff").unwrap());
        h.append(header::COOKIE, HeaderValue::from_static("  s=good  ; t=1"));
        assert_eq!(get(&h, "s"), Some("good"), "names are case-sensitive; a non-ASCII header is skipped whole");
        assert_eq!(get(&headers(&["s", "=s"]), "s"), None);
        assert_eq!(get(&HeaderMap::new(), "s"), None);
        assert_eq!(get(&headers(&[""]), ""), None, "an empty name is never a cookie");
    }

    #[test]
    fn only_pairs_sent_as_name_equals_value_are_read() {
        // What the proxy strips (names compared untrimmed) must include everything read as ours.
        assert_eq!(get(&headers(&["s =x; s=good"]), "s"), Some("good"));
        assert_eq!(get(&headers(&["s= x; s=good"]), "s"), Some("good"));
        assert_eq!(get(&headers(&["s\t=\tx"]), "s"), None);
        assert_eq!(get(&headers(&["s=a b"]), "s"), Some("a b"), "blanks inside a value are kept as sent");
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
