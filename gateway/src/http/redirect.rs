//! Where a login may send the browser afterwards: only to the gateway itself or to an allowed host. Anything
//! else (other hosts, protocol-relative `//x`, backslash tricks, control characters) is refused, so the login
//! page can never be used as an open redirect.

use url::Url;

/// Returns the redirect target if it is safe: a path on the gateway (`/…`, never `//…` or `/\…`), or an absolute
/// http(s) URL on the gateway's own origin or on an origin `allowed` names (see [`allows`]).
pub fn safe_target(rd: &str, public_url: &Url, allowed: &[String]) -> Option<String> {
    if rd.is_empty() || rd.len() > 4096 {
        return None;
    }
    // Browsers strip tabs and newlines and treat '\' as '/', which turns "/\evil.com" into "//evil.com".
    if rd.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    if rd.starts_with('/') {
        if rd.starts_with("//") {
            return None;
        }
        // Resolve against the gateway to be sure the result stays on it.
        let resolved = public_url.join(rd).ok()?;
        return same_origin(&resolved, public_url).then(|| rd.to_string());
    }
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if same_origin(&url, public_url) {
        return Some(url.to_string());
    }
    allowed.iter().any(|a| allows(a, &url, public_url)).then(|| url.to_string())
}

/// Whether one allow-list entry admits `url`: scheme, host and port must all match, not only the host.
/// - `https://app.example.com`, `http://app.example.com:8080`: that scheme on that port (the scheme's default
///   port when none is written); `https://.example.com` (or `https://*.example.com`) for any subdomain.
/// - A bare host (`app.example.com`, `.example.com`, and every proxy route's host): https on port 443, plus the
///   gateway's own scheme and port from `public_url` (the origin the gateway serves proxied hosts on; in a
///   plain-http development setup that is e.g. `http://…:8080`).
pub fn allows(entry: &str, url: &Url, public_url: &Url) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
    let here = (url.scheme(), url.port_or_known_default());
    let (pattern, origin_ok) = match entry.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            let (pattern, port) = match authority.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse::<u16>().ok()),
                _ => (authority, default_port(scheme)),
            };
            (pattern.to_string(), port.is_some() && here == (scheme, port))
        }
        None => {
            let ours = (public_url.scheme(), public_url.port_or_known_default());
            (entry.clone(), here == ("https", Some(443)) || here == ours)
        }
    };
    if !origin_ok || pattern.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.").or_else(|| pattern.strip_prefix('.')) {
        Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
        None => host == pattern,
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(rd: &str) -> Option<String> {
        let public = Url::parse("https://sso.example.com/").unwrap();
        safe_target(rd, &public, &[".apps.example.com".to_string(), "dash.example.org".to_string()])
    }

    #[test]
    fn allows_own_paths_and_allowed_hosts() {
        assert_eq!(check("/").as_deref(), Some("/"));
        assert_eq!(check("/oauth2/authorize?client_id=x").as_deref(), Some("/oauth2/authorize?client_id=x"));
        assert!(check("https://sso.example.com/account").is_some());
        assert!(check("https://grafana.apps.example.com/d/1").is_some());
        assert!(check("https://dash.example.org/").is_some());
    }

    #[test]
    fn refuses_open_redirects() {
        for bad in [
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "http://sso.example.com.evil.com/",
            "https://evil.com/?https://sso.example.com",
            "https://apps.example.com.evil.com/",
            "https://dash.example.org.evil.com/",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "https://user@evil.com",
            "https://sso.example.com@evil.com/",
            "http://sso.example.com/", // downgrade to another origin
            "",
        ] {
            assert_eq!(check(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn allowed_hosts_match_scheme_and_port_too() {
        let public = Url::parse("https://sso.example.com/").unwrap();
        let allowed = [
            "app.example.com".to_string(),
            "http://legacy.example.com:8080".to_string(),
            "https://.corp.example.com".to_string(),
            "https://admin.example.com:8443/".to_string(),
        ];
        let ok = |rd: &str| safe_target(rd, &public, &allowed).is_some();
        assert!(ok("https://app.example.com/x"));
        assert!(ok("https://app.example.com:443/x"));
        assert!(!ok("http://app.example.com/x"), "a bare host is https only when the gateway is https");
        assert!(!ok("https://app.example.com:8443/x"));
        assert!(ok("http://legacy.example.com:8080/"));
        assert!(!ok("http://legacy.example.com/"));
        assert!(!ok("https://legacy.example.com:8080/"));
        assert!(ok("https://wiki.corp.example.com/"));
        assert!(!ok("http://wiki.corp.example.com/"));
        assert!(!ok("https://wiki.corp.example.com:444/"));
        assert!(ok("https://admin.example.com:8443/"));
        assert!(!ok("https://admin.example.com/"));

        // A plain-http gateway (development): a bare host also means the gateway's own scheme and port.
        let dev = Url::parse("http://127.0.0.1:8080/").unwrap();
        let bare = ["app.localhost".to_string()];
        assert!(safe_target("http://app.localhost:8080/", &dev, &bare).is_some());
        assert!(safe_target("https://app.localhost/", &dev, &bare).is_some());
        assert!(safe_target("http://app.localhost/", &dev, &bare).is_none());
        assert!(safe_target("http://app.localhost:9999/", &dev, &bare).is_none());
    }
}
