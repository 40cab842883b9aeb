//! The chart's alerts and dashboard, without a cluster: promtool (built from the Go module proxy
//! with the control plane) checks the rule file and runs its unit tests; every alert has a unit
//! test in which it fires; the chart ships the rule file and the dashboard verbatim. That every
//! metric they name exists is checked against a running operator in the e2e suite
//! (e2e/observability.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube_healer_testenv::binaries::Binaries;

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"))
        .join("../..")
}

const RULES: &str = "charts/kube-healer/files/alerts/kube-healer.rules.yaml";
const RULE_TESTS: &str = "tests/alerts/kube-healer.rules.test.yaml";
const DASHBOARD: &str = "charts/kube-healer/files/dashboards/kube-healer.json";

/// Runs a binary of the control plane's directory; its output, or a failure that shows it.
fn run(binary: &str, args: &[&str], dir: &Path) -> String {
    let binaries = Binaries::locate().expect("the control plane's binaries (tests/controlplane/build.sh)");
    let scratch = std::env::temp_dir().join(format!("kube-healer-alerts-{}", std::process::id()));
    let out = Command::new(binaries.path(binary))
        .args(args)
        .current_dir(dir)
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("running {binary}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{binary} {}:\n{text}", args.join(" "));
    text
}

#[test]
#[ignore = "needs promtool from tests/controlplane/build.sh (tests/run builds it)"]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = run("promtool", &["check", "rules", RULES], &root());
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = run("promtool", &["test", "rules", RULE_TESTS], &root());
    assert!(tested.contains("SUCCESS"), "{tested}");
    println!("{checked}{tested}");
}

/// Every alert fires in at least one of the unit tests (and is named right there).
#[test]
fn every_alert_fires_in_a_unit_test() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join(RULES)).unwrap()).unwrap();
    let alerts: BTreeSet<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join(RULE_TESTS)).unwrap()).unwrap();
    let fired: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .filter(|a| a["exp_alerts"].as_sequence().is_some_and(|e| !e.is_empty()))
        .filter_map(|a| a["alertname"].as_str().map(str::to_string))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    let untested: Vec<_> = alerts.difference(&fired).collect();
    assert!(untested.is_empty(), "alerts no unit test fires: {untested:?}");
}

#[test]
#[ignore = "needs helm from tests/controlplane/build.sh (tests/run builds it)"]
fn the_chart_ships_the_rules_and_the_dashboard_verbatim() {
    let chart = root().join("charts/kube-healer").display().to_string();
    let rendered = run(
        "helm",
        &[
            "template",
            "x",
            &chart,
            "--namespace",
            "ops",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.grafanaDashboard.namespace=monitoring",
        ],
        &root(),
    );
    let docs: Vec<serde_json::Value> = rendered
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str(d).ok())
        .collect();
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    let file: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join(RULES)).unwrap()).unwrap();
    assert_eq!(rule["spec"], file, "the PrometheusRule's spec is the rule file");
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "x-kube-healer-dashboard")
        .expect("the dashboard's ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: serde_json::Value =
        serde_json::from_str(dashboard["data"]["kube-healer.json"].as_str().unwrap()).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(DASHBOARD)).unwrap()).unwrap();
    assert_eq!(shipped, file, "the ConfigMap holds the dashboard file");
    // Off by default.
    let plain = run("helm", &["template", "x", &chart], &root());
    assert!(!plain.contains("kind: PrometheusRule") && !plain.contains("grafana_dashboard"));
}
