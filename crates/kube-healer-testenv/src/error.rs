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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
