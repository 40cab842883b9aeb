use std::path::PathBuf;

/// Everything that can go wrong while building or running the local control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control-plane build failed ({script}): {detail}")]
    Build { script: PathBuf, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("generating certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("{component} did not become ready within {seconds}s: {detail} (log: {log})")]
    NotReady {
        component: String,
        seconds: u64,
        detail: String,
        log: PathBuf,
    },
    #[error("{component} exited early with {status}; last log lines:\n{tail}")]
    Exited {
        component: String,
        status: String,
        tail: String,
    },
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
    /// The same error as an earlier call's, which is remembered (the binaries are located once).
    #[error(transparent)]
    Again(std::sync::Arc<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An answer that says "not now" rather than "no": the API server throttling (429) or
    /// failing (5xx), or a call that timed out or lost its connection. On a loaded 2-core machine
    /// these come and go; a wait retries them until its deadline instead of failing at once.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => status.code == 429 || status.code >= 500,
            Error::Kube(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
