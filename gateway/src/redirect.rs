//! Where a login may send the browser afterwards: only to the gateway itself or to an allowed host. Anything
//! else (other hosts, protocol-relative `//x`, backslash tricks, control characters) is refused, so the login
//! page can never be used as an open redirect.

use url::Url;

/// Returns the redirect target if it is safe: a path on the gateway (`/…`, never `//…` or `/\…`), or an absolute
/// http(s) URL whose host is the gateway's or listed in `allowed` (exact, or `.example.com` for any subdomain).
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
    let host = url.host_str()?.to_ascii_lowercase();
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix('.') {
            Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
            None => host == a,
        }
    });
    ok.then(|| url.to_string())
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
}
