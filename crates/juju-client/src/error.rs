//! Errors of the Juju client, keeping Juju's `error-code` as a typed value.
//!
//! Juju reports failures in two places: as a top-level error frame (`error` +
//! `error-code`) that fails a whole call, and as an `Error` object inside one item of a
//! bulk result. Both become an [`ApiError`]; a whole failed call is [`Error::Api`].
//! No variant ever carries secret content: the server's messages name secrets by label
//! or URI and keys by name, and the client never formats values into an error.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::content::ContentError;

/// Juju's error codes (`rpc/params/apierror.go`), as far as this client acts on them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `not found`: missing secret, revision, backend, application, backend type.
    NotFound,
    /// `already exists`: duplicate secret label, backend name or id.
    AlreadyExists,
    /// `unauthorized access`: bad login and every "permission denied".
    Unauthorized,
    /// `not supported`: wrong facade for the connection kind, removing a backend in use.
    NotSupported,
    /// `not valid`: validation failures.
    NotValid,
    /// `not implemented`: unknown facade, version or method.
    NotImplemented,
    /// `bad request`.
    BadRequest,
    /// `model not found`: unknown model UUID in the connection path.
    ModelNotFound,
    /// `redirection required`: the model was migrated to another controller.
    RedirectionRequired,
    /// No code: errors Juju builds with a plain `errors.New`.
    Empty,
    /// Any other code, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// Parses the wire form of a code.
    pub fn from_wire(code: &str) -> Self {
        match code {
            "not found" => Self::NotFound,
            "already exists" => Self::AlreadyExists,
            "unauthorized access" => Self::Unauthorized,
            "not supported" => Self::NotSupported,
            "not valid" => Self::NotValid,
            "not implemented" => Self::NotImplemented,
            "bad request" => Self::BadRequest,
            "model not found" => Self::ModelNotFound,
            "redirection required" => Self::RedirectionRequired,
            "" => Self::Empty,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire form of the code (`""` for [`ErrorCode::Empty`]).
    pub fn as_wire(&self) -> &str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::Unauthorized => "unauthorized access",
            Self::NotSupported => "not supported",
            Self::NotValid => "not valid",
            Self::NotImplemented => "not implemented",
            Self::BadRequest => "bad request",
            Self::ModelNotFound => "model not found",
            Self::RedirectionRequired => "redirection required",
            Self::Empty => "",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire())
    }
}

/// One error reported by Juju: its message (the full Go error text) and code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", code_suffix(.code))]
pub struct ApiError {
    /// Juju's error code.
    pub code: ErrorCode,
    /// Juju's message, e.g. `secret with name "db" already exists`.
    pub message: String,
}

fn code_suffix(code: &ErrorCode) -> String {
    match code {
        ErrorCode::Empty => String::new(),
        c => format!(" ({c})"),
    }
}

impl ApiError {
    /// Builds an error from a message and a wire code.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::from_wire(code),
            message: message.into(),
        }
    }
}

/// The shared `Error` object of Juju's bulk results.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WireError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: String,
}

impl WireError {
    /// True when the object reports an error: Juju may leave either field empty.
    pub fn is_error(&self) -> bool {
        !self.message.is_empty() || !self.code.is_empty()
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError::new(&e.code, e.message)
    }
}

/// Everything a call through the Juju client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Juju answered the call with a top-level error.
    #[error("{facade}.{method}: {source}")]
    Api {
        /// Facade called.
        facade: &'static str,
        /// Method called.
        method: &'static str,
        /// What Juju said.
        #[source]
        source: ApiError,
    },
    /// Login was refused (bad credentials, no access to the model, unknown model).
    #[error("login to {target} refused: {source}")]
    Login {
        /// `controller` or `model <uuid>`.
        target: String,
        /// What Juju said.
        #[source]
        source: ApiError,
    },
    /// No connection to the controller could be made.
    #[error("cannot connect to Juju at {endpoint}: {detail}")]
    Connect {
        /// The address dialled.
        endpoint: String,
        /// Why it failed (TCP, TLS or websocket handshake).
        detail: String,
    },
    /// The connection dropped before the answer arrived; the call may or may not have
    /// taken effect in Juju.
    #[error("connection to Juju lost during {facade}.{method}")]
    ConnectionLost {
        /// Facade called.
        facade: &'static str,
        /// Method called.
        method: &'static str,
    },
    /// No answer within the call timeout.
    #[error("{facade}.{method} timed out after {after:?}")]
    Timeout {
        /// Facade called.
        facade: &'static str,
        /// Method called.
        method: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The controller does not offer a facade version this client speaks.
    #[error(
        "the Juju controller does not offer facade {facade} in a version this client supports ({wanted:?})"
    )]
    FacadeUnavailable {
        /// Facade name.
        facade: &'static str,
        /// Versions the client speaks.
        wanted: &'static [u32],
    },
    /// The model name or UUID matches no model visible to the user.
    #[error("model {model:?} not found")]
    ModelNotFound {
        /// The model as the caller gave it.
        model: String,
    },
    /// A bare model name matches no model of the logged-in user, but models of other
    /// owners; write `owner/name`.
    #[error("model name {model:?} is ambiguous: write one of {candidates:?}")]
    AmbiguousModel {
        /// The model as the caller gave it.
        model: String,
        /// `owner/name` of every match.
        candidates: Vec<String>,
    },
    /// Secret content breaks Juju's content rules; nothing was sent.
    #[error(transparent)]
    InvalidContent(#[from] ContentError),
    /// A frame or result did not have the expected shape.
    #[error("unexpected answer from Juju to {facade}.{method}: {detail}")]
    Protocol {
        /// Facade called.
        facade: &'static str,
        /// Method called.
        method: &'static str,
        /// What was wrong (never contains frame content).
        detail: String,
    },
    /// The client options are unusable (e.g. a CA that does not parse).
    #[error("invalid Juju client configuration: {0}")]
    Config(String),
    /// The client was shut down.
    #[error("the Juju client is shut down")]
    Closed,
    /// The client's [`Fence`](crate::Fence) has closed: this process no longer leads.
    #[error(
        "{facade}.{method}: not sent, this process no longer leads (its Lease could have run out)"
    )]
    Fenced {
        /// Facade called.
        facade: &'static str,
        /// Method called.
        method: &'static str,
    },
}

impl Error {
    /// The Juju error code behind this error, if Juju sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { source, .. } | Error::Login { source, .. } => Some(&source.code),
            _ => None,
        }
    }

    /// True when retrying later may succeed without anyone changing anything: the
    /// controller was unreachable, the connection dropped or the call timed out.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectionLost { .. }
                | Error::Timeout { .. }
                | Error::Closed
        )
    }

    /// True when Juju refused the credentials or the permission.
    pub fn is_unauthorized(&self) -> bool {
        self.code() == Some(&ErrorCode::Unauthorized)
    }
}

/// Result alias of the Juju client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips() {
        for code in [
            "not found",
            "already exists",
            "unauthorized access",
            "not supported",
            "not valid",
            "not implemented",
            "bad request",
            "model not found",
            "redirection required",
            "",
            "quota limit exceeded",
        ] {
            assert_eq!(ErrorCode::from_wire(code).as_wire(), code);
        }
        assert_eq!(
            ErrorCode::from_wire("unauthorized access"),
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn api_error_prints_like_the_juju_cli() {
        let e = ApiError::new("already exists", "secret with name \"db\" already exists");
        assert_eq!(
            e.to_string(),
            "secret with name \"db\" already exists (already exists)"
        );
        let e = ApiError::new("", "must specify either URI or label");
        assert_eq!(e.to_string(), "must specify either URI or label");
    }
}
