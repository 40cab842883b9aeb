//! The admin kubeconfig written for kubectl, helm and the operator under test, and the client
//! configuration read back from it (with timeouts fit for tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Result, io};
use crate::pki::Pki;

pub(super) async fn client_config(kubeconfig: &Path) -> Result<Config> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    // kube's default layer retries 429 up to 15 times with backoff up to 1000 s: a PDB refusal
    // from the Eviction API would hang a test for minutes instead of coming back as an answer.
    config.default_retry = false;
    Ok(config)
}

pub(super) fn write_kubeconfig(dir: &Path, server: &str, pki: &Pki) -> Result<PathBuf> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-healer-testenv", "cluster": {
            "server": server,
            "certificate-authority-data": b64(&pki.ca_pem),
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(&pki.admin_cert_pem),
            "client-key-data": b64(&pki.admin_key_pem),
        }}],
        "contexts": [{"name": "kube-healer-testenv", "context": {"cluster": "kube-healer-testenv", "user": "admin"}}],
        "current-context": "kube-healer-testenv",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&kubeconfig).expect("static json"),
    )
    .map_err(io("writing kubeconfig"))?;
    Ok(path)
}
