//! The repository's Helm chart on a test cluster: `helm` with the cluster's kubeconfig, and the
//! chart's ServiceAccount and RBAC applied as `helm install` would create them, with a kubeconfig
//! impersonating that ServiceAccount, so that the operator under test has exactly the chart's
//! permissions (see [`crate::TestCluster::forbidden_impersonated`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::{TestCluster, wait};

/// charts/kube-healer in this repository.
pub fn chart_dir() -> PathBuf {
    crate::binaries::repo_root().join("charts/kube-healer")
}

/// Runs the control plane's helm with this cluster's kubeconfig (and Helm's own directories in
/// the cluster's); stdout, or an error with stderr.
pub fn helm<S: AsRef<std::ffi::OsStr>>(cluster: &TestCluster, args: &[S]) -> anyhow::Result<String> {
    let out = std::process::Command::new(cluster.binaries().path("helm"))
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("HELM_CACHE_HOME", cluster.dir().join("helm/cache"))
        .env("HELM_CONFIG_HOME", cluster.dir().join("helm/config"))
        .env("HELM_DATA_HOME", cluster.dir().join("helm/data"))
        .output()
        .context("running helm")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "helm {} failed: {}{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
    Ok(stdout)
}

/// The templates whose objects give the operator its identity and permissions: its
/// ServiceAccount, its RBAC, and the node jobs' namespace and ServiceAccount.
const IDENTITY_TEMPLATES: [&str; 3] = ["serviceaccount.yaml", "rbac.yaml", "nodejobs.yaml"];

/// The chart's ServiceAccount and RBAC objects, the jobs namespace when node jobs are on (and the
/// release namespace) rendered by `helm template`, and the ServiceAccount's user name.
pub fn rbac_manifest(
    cluster: &TestCluster,
    release: &str,
    namespace: &str,
    set: &[&str],
) -> anyhow::Result<(String, String)> {
    let mut args = vec![
        "template".to_string(),
        release.to_string(),
        chart_dir().display().to_string(),
        "--namespace".into(),
        namespace.to_string(),
    ];
    for s in set {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    // Helm orders the documents for installation (namespaces first); those of other templates
    // are left out by their `# Source:` line.
    let all = helm(cluster, &args)?;
    let rendered: Vec<&str> = all
        .split("\n---")
        .filter(|doc| {
            IDENTITY_TEMPLATES
                .iter()
                .any(|t| doc.contains(&format!("# Source: kube-healer/templates/{t}\n")))
        })
        .collect();
    let account = rendered
        .iter()
        .filter_map(|doc| serde_yaml::from_str::<serde_json::Value>(doc).ok())
        .find(|o| o["kind"] == "ServiceAccount" && o["metadata"]["namespace"].as_str() == Some(namespace))
        .and_then(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .context("the chart renders no ServiceAccount")?;
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n{}",
        rendered.join("\n---\n")
    );
    Ok((manifest, format!("system:serviceaccount:{namespace}:{account}")))
}

/// A copy of the cluster's admin kubeconfig that impersonates `user` (`as:`).
pub fn impersonating_kubeconfig(cluster: &TestCluster, user: &str) -> anyhow::Result<PathBuf> {
    let mut config: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig_path())?)?;
    for entry in config["users"].as_array_mut().context("kubeconfig users")? {
        entry["user"]["as"] = serde_json::json!(user);
    }
    let path = cluster
        .dir()
        .join(format!("kubeconfig-{}", user.replace(':', "-")));
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

/// Applies the chart's ServiceAccount and RBAC for `release` in `namespace` (with `--set`
/// values), waits until the authorizer grants them, and returns a kubeconfig that acts as that
/// ServiceAccount.
pub async fn operator_identity(
    cluster: &TestCluster,
    release: &str,
    namespace: &str,
    set: &[&str],
) -> anyhow::Result<PathBuf> {
    let (manifest, user) = rbac_manifest(cluster, release, namespace, set)?;
    let file = cluster.dir().join(format!("chart-rbac-{release}.yaml"));
    std::fs::write(&file, manifest)?;
    cluster.kubectl(&["apply", "-f", &file.display().to_string()])?;
    let kubeconfig = impersonating_kubeconfig(cluster, &user)?;
    wait::until(
        &format!("RBAC for {user} in force"),
        Duration::from_secs(30),
        || async {
            let answer = cluster.kubectl(&[
                "auth",
                "can-i",
                "create",
                "pods",
                "--subresource",
                "eviction",
                "--as",
                &user,
            ]);
            Ok(answer.ok().filter(|a| a.trim() == "yes").map(|_| ()))
        },
    )
    .await?;
    Ok(kubeconfig)
}
