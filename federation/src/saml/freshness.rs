//! When and where an SP's message may be taken (SAML core §3.2.1, §3.7.1; profiles §4.1.4.1, §4.4.4.1), as strict
//! IdPs check it (Shibboleth's `MessageLifetimeSecurityHandler` and `ReceivedEndpointSecurityHandler`, Keycloak's
//! destination validator): `Destination`, when present, is the URL the message arrived at; `IssueInstant` is at
//! most [`CLOCK_SKEW`] ahead of `now` and at most [`MESSAGE_LIFETIME`] plus [`CLOCK_SKEW`] behind it; a
//! `NotOnOrAfter` has not passed. A captured message is therefore only usable for [`REPLAY_WINDOW`], and the
//! gateway remembers IDs that long so the same message is taken once. `now` is a parameter.

use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::error::SamlError;

/// How far the SP's clock may be from ours (Shibboleth's default).
pub const CLOCK_SKEW: Duration = Duration::minutes(3);
/// How long after its `IssueInstant` a message is taken (Shibboleth's default).
pub const MESSAGE_LIFETIME: Duration = Duration::minutes(3);
/// How long a message is taken at most, end to end: a replay cache that keeps IDs this long sees every replay.
pub const REPLAY_WINDOW: Duration = Duration::minutes(9);

/// The attributes of an SP's message that say when and where it may be taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timing {
    /// `IssueInstant`, as written.
    pub issue_instant: Option<String>,
    /// `NotOnOrAfter` (LogoutRequest only), as written.
    pub not_on_or_after: Option<String>,
    /// `Destination`, as written.
    pub destination: Option<String>,
}

fn instant(message: &'static str, attribute: &'static str, value: &str) -> Result<OffsetDateTime, SamlError> {
    OffsetDateTime::parse(value.trim(), &Rfc3339).map_err(|_| SamlError::Stale {
        message,
        reason: format!("its {attribute} {value:?} is not a SAML dateTime (such as 2026-01-31T12:00:00Z)"),
    })
}

impl Timing {
    /// Checks `message` (`LogoutRequest`, `AuthnRequest`), which arrived at `arrived_at` (the full URL without its
    /// query), at `now`.
    pub fn check(&self, message: &'static str, arrived_at: &str, now: OffsetDateTime) -> Result<(), SamlError> {
        if let Some(destination) = &self.destination {
            let norm = |s: &str| s.trim().trim_end_matches('/').to_string();
            if norm(destination) != norm(arrived_at) {
                return Err(SamlError::WrongDestination {
                    message,
                    destination: destination.clone(),
                    expected: arrived_at.to_string(),
                });
            }
        }
        let issued = self
            .issue_instant
            .as_deref()
            .ok_or_else(|| SamlError::Stale { message, reason: "it has no IssueInstant".into() })?;
        let issued = instant(message, "IssueInstant", issued)?;
        if issued > now + CLOCK_SKEW {
            return Err(SamlError::Stale {
                message,
                reason: format!(
                    "its IssueInstant is {} s in the future (more than the allowed clock skew of {} s); \
                     check the service provider's clock",
                    (issued - now).whole_seconds(),
                    CLOCK_SKEW.whole_seconds()
                ),
            });
        }
        if issued + MESSAGE_LIFETIME + CLOCK_SKEW < now {
            return Err(SamlError::Stale {
                message,
                reason: format!(
                    "it was issued {} s ago, and a message is taken for {} s (plus {} s clock skew); \
                     an old message is not replayed",
                    (now - issued).whole_seconds(),
                    MESSAGE_LIFETIME.whole_seconds(),
                    CLOCK_SKEW.whole_seconds()
                ),
            });
        }
        if let Some(limit) = &self.not_on_or_after {
            let limit = instant(message, "NotOnOrAfter", limit)?;
            if limit + CLOCK_SKEW <= now {
                return Err(SamlError::Stale {
                    message,
                    reason: format!("its NotOnOrAfter passed {} s ago", (now - limit).whole_seconds()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const URL: &str = "https://sso.example.com/saml/slo";

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn timing(issued: &str, destination: Option<&str>) -> Timing {
        Timing {
            issue_instant: Some(issued.into()),
            not_on_or_after: None,
            destination: destination.map(str::to_string),
        }
    }

    #[test]
    fn a_fresh_message_to_this_url_is_taken() {
        let now = at("2026-01-31T12:00:00Z");
        timing("2026-01-31T11:59:30.123Z", Some(URL)).check("LogoutRequest", URL, now).unwrap();
        timing("2026-01-31T12:02:00Z", None).check("LogoutRequest", URL, now).unwrap();
    }

    #[test]
    fn an_old_future_or_expired_message_is_refused() {
        let now = at("2026-01-31T12:00:00Z");
        let e = timing("2026-01-31T11:50:00Z", None).check("LogoutRequest", URL, now).unwrap_err();
        assert!(e.to_string().contains("issued 600 s ago"), "{e}");
        let e = timing("2026-01-31T12:10:00Z", None).check("LogoutRequest", URL, now).unwrap_err();
        assert!(e.to_string().contains("in the future"), "{e}");
        let mut t = timing("2026-01-31T11:59:00Z", None);
        t.not_on_or_after = Some("2026-01-31T11:55:00Z".into());
        assert!(t.check("LogoutRequest", URL, now).unwrap_err().to_string().contains("NotOnOrAfter passed"));
        let e = Timing::default().check("LogoutRequest", URL, now).unwrap_err();
        assert!(e.to_string().contains("no IssueInstant"), "{e}");
        let e = timing("yesterday", None).check("LogoutRequest", URL, now).unwrap_err();
        assert!(e.to_string().contains("not a SAML dateTime"), "{e}");
    }

    #[test]
    fn a_message_for_another_url_is_refused() {
        let now = at("2026-01-31T12:00:00Z");
        let e = timing("2026-01-31T12:00:00Z", Some("https://other-idp.example.net/saml/slo"))
            .check("LogoutRequest", URL, now)
            .unwrap_err();
        assert!(e.to_string().contains("other-idp.example.net"), "{e}");
    }
}
