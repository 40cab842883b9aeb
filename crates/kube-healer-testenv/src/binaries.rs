//! Locates the control-plane binaries, building them on first use with tests/controlplane/build.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result, io};

/// The directory holding kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd,
/// kwok, helm, promtool and the stock kwok stages.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    /// `$KUBE_HEALER_TESTBIN` when it is set and holds the binaries; otherwise runs the build script
    /// (seconds when its cache is warm, 20-40 minutes cold), whose progress goes to stderr.
    pub fn locate() -> Result<Self> {
        static FOUND: OnceLock<std::result::Result<PathBuf, std::sync::Arc<Error>>> = OnceLock::new();
        FOUND
            .get_or_init(|| locate_uncached().map_err(std::sync::Arc::new))
            .clone()
            .map(|dir| Binaries { dir })
            .map_err(Error::Again)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn stock_stage(&self, relative: &str) -> PathBuf {
        self.dir.join("kwok-stages").join(relative)
    }
}

/// The repository's tests/controlplane directory.
pub fn controlplane_dir() -> PathBuf {
    repo_root().join("tests/controlplane")
}

/// The repository's root. Cargo sets CARGO_MANIFEST_DIR when it runs a test (the test's crate,
/// under crates/), and that is preferred to the directory this crate was built in: a build
/// directory shared by checkouts (the cache outside the repository) may hold this crate as
/// another checkout built it, with that checkout's path, gone now.
pub fn repo_root() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|crate_dir| PathBuf::from(crate_dir).join("../.."))
        .filter(|root| root.join("charts").is_dir())
        .unwrap_or(built_in)
}

fn locate_uncached() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBE_HEALER_TESTBIN").map(PathBuf::from)
        && dir.join("kube-apiserver").exists()
        && dir.join("kwok-stages").exists()
        && dir.join("promtool").exists()
    {
        return Ok(dir);
    }
    let script = controlplane_dir().join("build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(io(format!("running {}", script.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::Build {
            script,
            detail: format!("{}; stdout: {stdout}", output.status),
        });
    }
    let dir = stdout.lines().last().map(str::trim).unwrap_or_default();
    if dir.is_empty() {
        return Err(Error::Build {
            script,
            detail: "printed no output directory".into(),
        });
    }
    Ok(PathBuf::from(dir))
}
