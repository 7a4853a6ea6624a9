//! The one canonical form of a request path, on which every decision is made (own paths, routes, public paths,
//! role rules, forward-auth) and which is the path forwarded upstream, so that the gateway and the app behind it
//! can never read one request as two different paths.
//!
//! Following RFC 3986 §6.2.2 and what nginx does before it matches a `location`: percent-encoded unreserved
//! characters are decoded (`%61` → `a`, `%2e` → `.`), other escapes are kept with upper-case hex, dot segments are
//! removed (§5.2.4) and runs of slashes are merged. What cannot be made unambiguous is refused rather than guessed:
//! an encoded `/` (`%2F`) or `\`, a raw `\`, a NUL, `..` above the root, malformed escapes, bytes that are not
//! UTF-8, and a dot segment carrying path parameters (`/..;/`, which Tomcat reads as `..`). An encoded slash and
//! `;` path parameters are refused only unless the route that takes the request opts in (they are reported as
//! [`Canonical::encoded_slash`] and [`Canonical::parameters`]).

use std::borrow::Cow;

/// Why a path cannot be given one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (e.g. `OPTIONS *`).
    #[error("the request path must start with /")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("the request path has a malformed percent escape")]
    BadEscape,
    /// The decoded path is not UTF-8 (e.g. an overlong `%C0%AF`).
    #[error("the request path does not decode to UTF-8")]
    NotUtf8,
    /// `%00`.
    #[error("the request path contains an encoded NUL")]
    Nul,
    /// A raw or encoded backslash, which some servers read as `/`.
    #[error("the request path contains a backslash")]
    Backslash,
    /// More `..` segments than there are segments to remove.
    #[error("the request path climbs above the root with ..")]
    AboveRoot,
    /// `..;x` or `.;x`: Tomcat and Jetty strip the parameters and then climb.
    #[error("the request path has a dot segment with path parameters (..;)")]
    DotSegmentParameters,
}

/// A canonical path, and what in it needs the taking route's consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical<'a> {
    /// The canonical path (borrowed when the request's path was already canonical, the common case).
    pub path: Cow<'a, str>,
    /// The path holds an encoded slash (`%2F`), kept encoded; allowed only on routes with `allow_encoded_slashes`.
    pub encoded_slash: bool,
    /// A segment holds `;` path parameters; allowed only on routes with `allow_path_parameters`.
    pub parameters: bool,
}

/// Is `b` an RFC 3986 unreserved character?
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Is `raw` already canonical with nothing to report? A single pass over the bytes, no allocation: no `%`, `\`,
/// `;` or NUL, only ASCII, no empty segment and no `.` or `..` segment.
fn is_plainly_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut seg_start = 1;
    for i in 1..=b.len() {
        let c = b.get(i).copied().unwrap_or(b'/');
        if c == b'/' {
            let seg = &b[seg_start..i];
            // An empty segment is allowed only as the trailing slash.
            if (seg.is_empty() && i != b.len()) || seg == b"." || seg == b".." {
                return false;
            }
            seg_start = i + 1;
        } else if matches!(c, b'%' | b'\\' | b';' | 0) || !c.is_ascii() {
            return false;
        }
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical form of the request path `raw` (the path of the request target, without the query).
pub fn canonicalize(raw: &str) -> Result<Canonical<'_>, PathError> {
    if raw.is_empty() {
        return Ok(Canonical { path: Cow::Borrowed("/"), encoded_slash: false, parameters: false });
    }
    if is_plainly_canonical(raw) {
        return Ok(Canonical { path: Cow::Borrowed(raw), encoded_slash: false, parameters: false });
    }
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // The fully decoded path must be UTF-8 and free of NUL, whatever stays encoded in the canonical form.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
            else {
                return Err(PathError::BadEscape);
            };
            decoded.push(h << 4 | l);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::NotUtf8);
    }
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    if decoded.contains(&b'\\') {
        return Err(PathError::Backslash);
    }

    let mut encoded_slash = false;
    let mut parameters = false;
    // Segments of the output, as byte ranges into `out`.
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut segments: Vec<usize> = Vec::new(); // start offsets in `out` of each kept segment (after its '/')
    let mut trailing_slash = false;
    for raw_seg in raw[1..].split('/') {
        // Decode unreserved escapes; keep the rest encoded with upper-case hex; encode raw non-ASCII bytes.
        let mut seg = Vec::with_capacity(raw_seg.len());
        let sb = raw_seg.as_bytes();
        let mut j = 0;
        while j < sb.len() {
            let c = sb[j];
            if c == b'%' {
                // Validity was checked above.
                let v = hex(sb[j + 1]).unwrap_or(0) << 4 | hex(sb[j + 2]).unwrap_or(0);
                if unreserved(v) {
                    seg.push(v);
                } else {
                    if v == b'/' {
                        encoded_slash = true;
                    }
                    seg.extend_from_slice(&[b'%', UPPER_HEX[usize::from(v >> 4)], UPPER_HEX[usize::from(v & 15)]]);
                }
                j += 3;
            } else if !c.is_ascii() {
                seg.extend_from_slice(&[b'%', UPPER_HEX[usize::from(c >> 4)], UPPER_HEX[usize::from(c & 15)]]);
                j += 1;
            } else {
                seg.push(c);
                j += 1;
            }
        }
        let name = seg.split(|&c| c == b';').next().unwrap_or(&[]);
        if seg.contains(&b';') {
            if name == b"." || name == b".." {
                return Err(PathError::DotSegmentParameters);
            }
            parameters = true;
        }
        trailing_slash = false;
        match seg.as_slice() {
            b"" | b"." => trailing_slash = true,
            b".." => {
                let start = segments.pop().ok_or(PathError::AboveRoot)?;
                out.truncate(start.saturating_sub(1));
                trailing_slash = true;
            }
            _ => {
                out.push(b'/');
                segments.push(out.len());
                out.extend_from_slice(&seg);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    // Only ASCII was written: escapes, and bytes of the ASCII input.
    let path = String::from_utf8(out).map_err(|_| PathError::NotUtf8)?;
    Ok(Canonical { path: Cow::Owned(path), encoded_slash, parameters })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn canon(p: &str) -> String {
        canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}")).path.into_owned()
    }

    #[test]
    fn canonical_paths_are_borrowed_as_they_are() {
        for p in ["/", "/a", "/a/", "/admin/secret.txt", "/a.b/c..d/...", "/x-y_z~"] {
            let c = canonicalize(p).unwrap();
            assert!(matches!(c.path, Cow::Borrowed(_)), "{p}");
            assert_eq!(c.path, p);
        }
    }

    #[test]
    fn the_attack_run_paths_become_the_path_the_upstream_serves() {
        for (raw, want) in [
            ("/public/../admin/secret.txt", "/admin/secret.txt"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/public/./../admin", "/admin"),
            ("//admin/x", "/admin/x"),
            ("/./admin/x", "/admin/x"),
            ("/x/../admin/x", "/admin/x"),
            ("/%61dmin/x", "/admin/x"),
            ("/admin//x", "/admin/x"),
            ("/admin/.", "/admin/"),
            ("/admin/x/..", "/admin/"),
            ("/a/b/../../", "/"),
            ("/..a/.b./...", "/..a/.b./..."),
            ("/%7euser/%41", "/~user/A"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b%3fc", "/a%20b%3Fc"),
            ("/%25", "/%25"),
            ("", "/"),
        ] {
            assert_eq!(canon(raw), want, "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, err) in [
            ("/..", PathError::AboveRoot),
            ("/a/../..", PathError::AboveRoot),
            ("/%2e%2e/etc/passwd", PathError::AboveRoot),
            ("/a%00b", PathError::Nul),
            ("/a%5cb", PathError::Backslash),
            ("/a\\..\\admin", PathError::Backslash),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/%c0%af", PathError::NotUtf8),
            ("/%ff", PathError::NotUtf8),
            ("/public/..;/admin", PathError::DotSegmentParameters),
            ("/public/.;x/admin", PathError::DotSegmentParameters),
            ("*", PathError::NotAbsolute),
        ] {
            assert_eq!(canonicalize(raw).map(|c| c.path.into_owned()), Err(err), "{raw}");
        }
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/proxy_path.rs`): a raw NUL took the fast path and came back as
    /// canonical, while `%00` was refused.
    #[test]
    fn a_raw_nul_is_refused_like_an_encoded_one() {
        for raw in ["/a\0b", "/\0", "/admin/\0/x", "/a\0%41"] {
            assert_eq!(canonicalize(raw).map(|c| c.path.into_owned()), Err(PathError::Nul), "{raw:?}");
        }
    }

    #[test]
    fn encoded_slashes_and_parameters_are_reported() {
        let c = canonicalize("/admin%2f").unwrap();
        assert_eq!((c.path.as_ref(), c.encoded_slash, c.parameters), ("/admin%2F", true, false));
        let c = canonicalize("/admin;jsessionid=1/x").unwrap();
        assert_eq!((c.path.as_ref(), c.encoded_slash, c.parameters), ("/admin;jsessionid=1/x", false, true));
        assert!(!canonicalize("/a%3bb").unwrap().parameters, "an encoded ; is data");
    }

    #[test]
    fn canonical_output_is_a_fixed_point() {
        for raw in ["/a/./b/../c//d/", "/%61/%2e/%7E", "/x/%2F/..", "/caf%c3%a9/", "/a;b/c", "//"] {
            let once = canon(raw);
            assert_eq!(canon(&once), once, "{raw}");
            assert!(matches!(canonicalize(&once).unwrap().path, Cow::Borrowed(_)) || once.contains(['%', ';']));
        }
    }
}
