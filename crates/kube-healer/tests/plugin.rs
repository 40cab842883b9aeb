//! `kubectl healer ...`: the CLI as a kubectl plugin, through the real kubectl's plugin discovery
//! (`kubectl-healer` on PATH, a link to the kube-healer binary), named as the user typed it.

use std::path::PathBuf;
use std::process::Command;

use kube_healer_testenv::binaries::Binaries;

/// A directory holding `kubectl-healer`, a symbolic link to the kube-healer binary, as the README
/// says to make one.
fn plugin_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kube-healer-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-healer");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kube-healer"), &link).unwrap();
    dir
}

/// kubectl (the control plane's) with the plugin's directory first on PATH; (exit code, stdout,
/// stderr).
fn kubectl(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let kubectl = Binaries::locate()
        .expect("kubectl (tests/controlplane/build.sh)")
        .path("kubectl");
    let path = format!(
        "{}:{}",
        plugin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(kubectl)
        .args(args)
        .env("PATH", path)
        // No cluster: the plugin's offline commands need none, and kubectl must not look for one.
        .env("KUBECONFIG", "/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs kubectl from tests/controlplane/build.sh (tests/run builds it)"]
fn kubectl_finds_the_plugin_and_runs_it() {
    let (code, listed, _) = kubectl(&["plugin", "list"], None);
    assert_eq!(code, 0, "{listed}");
    assert!(listed.contains("kubectl-healer"), "{listed}");

    let (code, help, stderr) = kubectl(&["healer", "--help"], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(help.contains("Usage: kubectl healer <COMMAND>"), "{help}");
    assert!(help.contains("classify"), "{help}");

    // A command offline, input on stdin, through kubectl.
    let node = r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.", "lastTransitionTime": "2026-11-22T09:40:00Z"}]}}"#;
    let (code, out, stderr) = kubectl(
        &["healer", "classify", "-f", "-", "--now", "2026-11-22T10:00:00Z"],
        Some(node),
    );
    assert!(code == 0 || code == 1, "{code}: {stderr}");
    assert!(
        out.contains("n1") && out.contains("NodeUnreachable"),
        "{out}{stderr}"
    );

    // A mistake is named as typed.
    let (code, _, stderr) = kubectl(&["healer", "no-such-command"], None);
    assert_ne!(code, 0);
    assert!(stderr.contains("Usage: kubectl healer <COMMAND>"), "{stderr}");
}
