//! The control plane's error type and its single conversion to `tonic::Status`.

use bosun_core::app::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("application {0:?} not found")]
    AppNotFound(String),
    #[error("application {0:?} already exists; use update to change it")]
    AppExists(String),
    #[error("cluster {0:?} not found")]
    ClusterNotFound(String),
    /// Anything else looked up by name that does not exist (a credential, repository
    /// credentials, a history entry, a bundle): the message says what and what to do.
    #[error("{0}")]
    NotFound(String),
    /// Something created by name that exists already: the message says what to do.
    #[error("{0}")]
    Exists(String),
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A write conditioned on a version that is no longer current (read again and retry).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("join token is invalid, expired or already used; create a new one with `bosun cluster add NAME`")]
    BadJoinToken,
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The store could not serve (the message says why); the call can be retried.
    #[error("storage failed: {0}")]
    Store(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("certificate authority: {0}")]
    Pki(String),
    #[error("secrets: {0}")]
    Secrets(String),
    #[error("git {repo}: {message}")]
    Git { repo: String, message: String },
    #[error("rendering {path:?} at {revision}: {message}")]
    Render { path: String, revision: String, message: String },
    /// A source error recorded earlier (a failed render not tried again yet), as it read then.
    #[error("{0}")]
    Source(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Code;
        let code = match &e {
            Error::AppNotFound(_) | Error::ClusterNotFound(_) | Error::NotFound(_) => Code::NotFound,
            Error::AppExists(_) | Error::Exists(_) => Code::AlreadyExists,
            Error::InvalidSpec(_) | Error::InvalidRequest(_) => Code::InvalidArgument,
            Error::Conflict(_) => Code::Aborted,
            Error::BadJoinToken | Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Git { .. } | Error::Render { .. } | Error::Source(_) => Code::FailedPrecondition,
            Error::Store(_) => Code::Unavailable,
            Error::Pki(_) | Error::Secrets(_) | Error::Internal(_) => Code::Internal,
        };
        tonic::Status::new(code, e.to_string())
    }
}
