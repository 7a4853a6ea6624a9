//! Who a request comes from: a session's user, the subject of an access token, or a service client.

use std::sync::Arc;

use crate::domain::session::Session;

/// Who is asking, as the proxy and forward-auth see it: a session's user (shared with the session store, not copied) or the
/// claims of a fedgate access token.
#[derive(Debug, Clone)]
pub struct Identity {
    who: Who,
    /// A token to pass upstream in `proxy.headers.access_token`, when configured.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
enum Who {
    Session(Arc<Session>),
    Token {
        subject: String,
        username: String,
        groups: Vec<String>,
        roles: Vec<String>,
    },
    /// A client's own `client_credentials` token: no user behind it.
    Client {
        client_id: String,
        groups: Vec<String>,
        roles: Vec<String>,
    },
}

impl Identity {
    /// The user of a session.
    pub fn from_session(session: Arc<Session>, token: Option<String>) -> Self {
        Self { who: Who::Session(session), token }
    }

    /// The subject of an access token.
    pub fn from_token(
        subject: String,
        username: String,
        groups: Vec<String>,
        roles: Vec<String>,
        token: String,
    ) -> Self {
        Self { who: Who::Token { subject, username, groups, roles }, token: Some(token) }
    }

    /// A service client, by its own `client_credentials` token.
    pub fn from_client(client_id: String, groups: Vec<String>, roles: Vec<String>, token: String) -> Self {
        Self { who: Who::Client { client_id, groups, roles }, token: Some(token) }
    }

    /// Stable id.
    pub fn subject(&self) -> &str {
        match &self.who {
            Who::Session(s) => &s.user.unique_id,
            Who::Token { subject, .. } => subject,
            Who::Client { client_id, .. } => client_id,
        }
    }

    /// Username (a service client's `client_id`).
    pub fn username(&self) -> &str {
        match &self.who {
            Who::Session(s) => &s.user.username,
            Who::Token { username, .. } => username,
            Who::Client { client_id, .. } => client_id,
        }
    }

    /// The `client_id` of a service client; `None` for a user.
    pub fn client_id(&self) -> Option<&str> {
        match &self.who {
            Who::Client { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// E-mail (sessions only; access tokens do not carry it).
    pub fn email(&self) -> Option<&str> {
        match &self.who {
            Who::Session(s) => s.user.email.as_deref(),
            Who::Token { .. } | Who::Client { .. } => None,
        }
    }

    /// Group names.
    pub fn groups(&self) -> &[String] {
        match &self.who {
            Who::Session(s) => &s.user.groups,
            Who::Token { groups, .. } | Who::Client { groups, .. } => groups,
        }
    }

    /// The session behind this identity, if it is a session's user.
    pub fn session(&self) -> Option<&Session> {
        match &self.who {
            Who::Session(s) => Some(s),
            Who::Token { .. } | Who::Client { .. } => None,
        }
    }

    /// Roles.
    pub fn roles(&self) -> &[String] {
        match &self.who {
            Who::Session(s) => &s.user.roles,
            Who::Token { roles, .. } | Who::Client { roles, .. } => roles,
        }
    }
}
