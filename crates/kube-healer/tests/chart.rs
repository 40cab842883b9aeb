//! The Helm chart on the real cluster: lint; default and everything-on renders accepted by the
//! API server (server-side dry run); install into a namespace that enforces the restricted Pod
//! Security profile; upgrade (the CRDs too); the installed ServiceAccount's permissions, exactly
//! what the operator uses (the harness fails the run on any 403 in the audit log); uninstall
//! keeps the CRDs.
//!
//! Its own cluster: the release installs the cluster's CRDs (an older HealingAction CRD first,
//! then upgraded), which Helm can only do where nobody installed them before it, and which every
//! other test's operator and records would be using meanwhile.

mod support;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::HealingPolicy;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::chart::{chart_dir, helm, impersonating_kubeconfig};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{HEAL, Operator, create_policy, phase_reason, records};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test("the_chart_lints_and_refuses_bad_values_by_name", lint),
            test(
                "the_chart_installs_restricted_upgrades_its_crds_and_its_serviceaccount_heals",
                install_upgrade_heal,
            ),
        ],
    )
}

const EVERYTHING_ON: &str = "ci/everything-on-values.yaml";

async fn lint(ctx: Ctx) -> anyhow::Result<()> {
    let chart = chart_dir();
    let everything = chart.join(EVERYTHING_ON);
    helm(
        &ctx.cluster,
        &["lint".as_ref(), "--strict".as_ref(), chart.as_os_str()],
    )?;
    helm(
        &ctx.cluster,
        &[
            "lint".as_ref(),
            "--strict".as_ref(),
            chart.as_os_str(),
            "-f".as_ref(),
            everything.as_os_str(),
        ],
    )?;
    // values.schema.json names the value that is wrong.
    for (set, expected) in [
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("operator.recordMaxAge=soon", "/operator/recordMaxAge"),
        ("replicaCount=-1", "/replicaCount"),
        (
            "examplePolicies.no-such-policy=true",
            "examplePolicies.no-such-policy",
        ),
        ("nodeJobs.podSecurity=root", "/nodeJobs/podSecurity"),
        // The value node jobs replaced says what to do instead.
        (
            "rbac.runJobs=true",
            "rbac.runJobs is replaced by nodeJobs.enabled",
        ),
    ] {
        let err = helm(
            &ctx.cluster,
            &[
                "template".as_ref(),
                "x".as_ref(),
                chart.as_os_str(),
                "--set".as_ref(),
                set.as_ref(),
            ],
        )
        .expect_err(set)
        .to_string();
        ensure!(err.contains(expected), "--set {set}: {err}");
    }
    jobs_pod_security(&ctx)
}

/// The jobs namespace's Pod Security level is what the defined NodeJobs need: baseline for a
/// plain job, privileged for one with host access or privilege, or as set.
fn jobs_pod_security(ctx: &Ctx) -> anyhow::Result<()> {
    let chart = chart_dir().display().to_string();
    let level = |definitions: &str, extra: &[&str]| -> anyhow::Result<String> {
        let mut args = vec!["template", "x", &chart, "--set", "nodeJobs.enabled=true"];
        let json = format!("nodeJobs.definitions={definitions}");
        args.extend(["--set-json", &json]);
        args.extend(extra);
        let rendered = helm(&ctx.cluster, &args)?;
        let namespace = rendered
            .split("\n---")
            .filter_map(|doc| serde_yaml::from_str::<serde_json::Value>(doc).ok())
            .find(|o| o["kind"] == "Namespace")
            .context("the jobs namespace")?;
        let labels = &namespace["metadata"]["labels"];
        let enforce = labels["pod-security.kubernetes.io/enforce"]
            .as_str()
            .unwrap_or_default();
        ensure!(labels["pod-security.kubernetes.io/warn"] == enforce, "{labels}");
        Ok(enforce.to_string())
    };
    let plain = r#"{"sync": {"podSpec": {"containers": [{"name": "s", "image": "busybox"}]}}}"#;
    let host = |field: &str| {
        format!(
            r#"{{"sync": {{"podSpec": {{"containers": [{{"name": "s", "image": "busybox"}}]}}}},
            "host": {{"podSpec": {field}}}}}"#
        )
    };
    ensure!(level(plain, &[])? == "baseline", "a plain job needs baseline");
    for needs in [
        r#"{"hostPID": true, "containers": [{"name": "h", "image": "busybox"}]}"#,
        r#"{"volumes": [{"name": "v", "hostPath": {"path": "/"}}], "containers": [{"name": "h", "image": "busybox"}]}"#,
        r#"{"containers": [{"name": "h", "image": "busybox", "securityContext": {"privileged": true}}]}"#,
        r#"{"initContainers": [{"name": "h", "image": "busybox", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}], "containers": [{"name": "m", "image": "busybox"}]}"#,
        r#"{"containers": [{"name": "h", "image": "busybox", "ports": [{"containerPort": 1, "hostPort": 1}]}]}"#,
    ] {
        ensure!(
            level(&host(needs), &[])? == "privileged",
            "{needs} needs privileged"
        );
    }
    ensure!(
        level(plain, &["--set", "nodeJobs.podSecurity=restricted"])? == "restricted",
        "nodeJobs.podSecurity sets it"
    );
    Ok(())
}

/// The CRDs that `ServiceMonitor` and `PrometheusRule` objects need (the Prometheus Operator's),
/// reduced to their names.
const PROMETHEUS_OPERATOR_CRDS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: PrometheusRule, plural: prometheusrules, singular: prometheusrule, listKind: PrometheusRuleList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

async fn install_upgrade_heal(ctx: Ctx) -> anyhow::Result<()> {
    let cluster = &ctx.cluster;
    let ns = ctx.name("kh");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let restricted: Namespace = serde_json::from_value(json!({"metadata": {"name": ns,
        "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                   "pod-security.kubernetes.io/enforce-version": "latest"}}}))?;
    namespaces.create(&PostParams::default(), &restricted).await?;
    nodes::add_node(&ctx.client, &ctx.name("n1")).await?;

    // 1. Install an older chart whose HealingAction CRD lacks the Reason column, with one example
    //    policy: the CRDs and the policy (a post-install hook) in one release.
    let old = cluster.dir().join("old-chart");
    copy_dir(&chart_dir(), &old)?;
    let crd_file = old.join("files/crds/healingactions.yaml");
    let crd = std::fs::read_to_string(&crd_file)?;
    let reason_column = "    - jsonPath: .status.reason\n      name: Reason\n      type: string\n";
    ensure!(
        crd.contains(reason_column),
        "the Reason column moved; update this test"
    );
    std::fs::write(&crd_file, crd.replace(reason_column, ""))?;
    let old_chart = old.display().to_string();
    let started = std::time::Instant::now();
    helm(
        cluster,
        &[
            "install",
            "kh",
            &old_chart,
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "90s",
            "--set",
            "examplePolicies.evicted-leftovers=true",
        ],
    )?;
    eprintln!("    helm install --wait: {:.1}s", started.elapsed().as_secs_f64());
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let columns = |crd: &CustomResourceDefinition| -> Vec<String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    let installed = crds.get("healingactions.healing.kubehealer.io").await?;
    ensure!(
        !columns(&installed).contains(&"Reason".to_string()),
        "old CRD installed"
    );
    // The restricted profile admitted both replicas (a refused pod never exists).
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let operator_pods = ListParams::default().labels("app.kubernetes.io/instance=kh");
    wait::until("2 operator pods", HEAL, || async {
        let n = pods.list(&operator_pods).await?.items.len();
        Ok((n == 2).then_some(()))
    })
    .await?;
    let policies: Api<HealingPolicy> = Api::all(ctx.client.clone());
    ensure!(
        policies.get_opt("evicted-leftovers").await?.is_some(),
        "the example policy"
    );

    // 2. Upgrade to this chart: the CRD gains its column; values flow into the Deployment and
    //    the ClusterRole.
    let chart = chart_dir().display().to_string();
    helm(
        cluster,
        &[
            "upgrade",
            "kh",
            &chart,
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "90s",
            "--set",
            "operator.dryRun=true",
            "--set",
            "nodeJobs.enabled=true",
            "--set",
            "examplePolicies.evicted-leftovers=true",
        ],
    )?;
    let upgraded = crds.get("healingactions.healing.kubehealer.io").await?;
    ensure!(
        columns(&upgraded).contains(&"Reason".to_string()),
        "helm upgrade did not upgrade the CRD: {:?}",
        columns(&upgraded)
    );
    ensure!(
        upgraded
            .metadata
            .annotations
            .unwrap_or_default()
            .get("helm.sh/resource-policy")
            == Some(&"keep".to_string()),
        "CRDs are kept on uninstall"
    );
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .get("kh-kube-healer")
        .await?;
    let env = serde_json::to_value(
        &deployment
            .spec
            .context("spec")?
            .template
            .spec
            .context("pod spec")?
            .containers[0]
            .env,
    )?;
    ensure!(
        env.as_array()
            .context("env")?
            .iter()
            .any(|e| e["name"] == "KUBE_HEALER_DRY_RUN" && e["value"] == "true"),
        "operator.dryRun reached the Deployment: {env}"
    );
    let role = Api::<ClusterRole>::all(ctx.client.clone())
        .get("kh-kube-healer")
        .await?;
    let rules = role.rules.unwrap_or_default();
    // nodeJobs.enabled: NodeJobs read cluster-wide, Jobs only in the jobs namespace, which
    // enforces what the (no) definitions need.
    ensure!(
        rules
            .iter()
            .any(|r| r.resources.iter().flatten().any(|x| x == "nodejobs"))
            && !rules
                .iter()
                .any(|r| r.resources.iter().flatten().any(|x| x == "jobs")),
        "nodeJobs.enabled: {rules:?}"
    );
    let jobs_role =
        Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(ctx.client.clone(), "kh-kube-healer-jobs")
            .get("kh-kube-healer-node-jobs")
            .await?;
    ensure!(
        jobs_role
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "jobs")),
        "the operator's Jobs permission in its jobs namespace: {jobs_role:?}"
    );
    let jobs_ns = Api::<Namespace>::all(ctx.client.clone())
        .get("kh-kube-healer-jobs")
        .await?;
    ensure!(
        jobs_ns
            .metadata
            .labels
            .unwrap_or_default()
            .get("pod-security.kubernetes.io/enforce")
            == Some(&"baseline".to_string()),
        "the jobs namespace enforces baseline with no privileged definition"
    );
    // Least privilege: no wildcards, no Secrets, anywhere.
    for rule in &rules {
        for list in [
            &rule.verbs,
            rule.resources.as_ref().unwrap_or(&vec![]),
            rule.api_groups.as_ref().unwrap_or(&vec![]),
        ] {
            ensure!(!list.iter().any(|x| x == "*"), "wildcard in {rule:?}");
        }
        ensure!(
            !rule.resources.iter().flatten().any(|x| x == "secrets"),
            "secrets in {rule:?}"
        );
    }
    let account = format!("system:serviceaccount:{ns}:kh-kube-healer");
    for forbidden in [
        ["get", "secrets"],
        ["list", "secrets"],
        ["update", "nodes"],
        ["delete", "nodes"],
        ["create", "pods"],
    ] {
        let answer = cluster
            .kubectl(&[
                "auth",
                "can-i",
                forbidden[0],
                forbidden[1],
                "--all-namespaces",
                "--as",
                &account,
            ])
            .unwrap_or_else(|e| e.to_string());
        ensure!(
            !answer.trim().ends_with("yes"),
            "{account} may {} {}",
            forbidden[0],
            forbidden[1]
        );
    }

    // 3. Server-side dry run of the default and the everything-on renders, as another release.
    cluster.kubectl(&["create", "namespace", &format!("{ns}-dry")])?;
    let sm = cluster.dir().join("prometheus-operator-crds.yaml");
    std::fs::write(&sm, PROMETHEUS_OPERATOR_CRDS)?;
    cluster.kubectl(&["apply", "-f", &sm.display().to_string()])?;
    wait::until("the Prometheus Operator's CRDs to serve", HEAL, || async {
        Ok(cluster
            .kubectl(&["get", "servicemonitors,prometheusrules", "-A"])
            .ok()
            .map(|_| ()))
    })
    .await?;
    let everything = chart_dir().join(EVERYTHING_ON).display().to_string();
    for extra in [vec![], vec!["-f", everything.as_str()]] {
        let mut args = vec!["template", "dry", chart.as_str(), "-n", &ns];
        args.extend(extra.iter().copied());
        let rendered = helm(cluster, &args)?;
        // The namespaces the chart creates (the jobs namespace) exist before what goes in
        // them: a dry run creates nothing.
        let namespaces: Vec<&str> = rendered
            .split("\n---")
            .filter(|doc| doc.contains("\nkind: Namespace\n"))
            .collect();
        if !namespaces.is_empty() {
            let file = cluster.dir().join("namespaces.yaml");
            std::fs::write(&file, namespaces.join("\n---"))?;
            cluster.kubectl(&["apply", "-f", &file.display().to_string()])?;
        }
        let file = cluster.dir().join("rendered.yaml");
        std::fs::write(&file, &rendered)?;
        let file = file.display().to_string();
        let out = cluster.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            &file,
        ])?;
        let applied = out.lines().filter(|l| l.contains("(server dry run)")).count();
        let objects = rendered.matches("\nkind: ").count();
        ensure!(
            applied == objects && applied > 0,
            "{applied} of {objects} objects accepted:\n{out}"
        );
        eprintln!("    server-side dry run {extra:?}: {applied} objects accepted");
    }

    // 4. The operator as the installed ServiceAccount (outside the cluster, impersonated) heals a
    //    failure and leads on the chart's Lease; any 403 fails the run (see the harness).
    let kubeconfig = impersonating_kubeconfig(cluster, &account)?;
    let op = Operator::spawn(
        cluster,
        &kubeconfig,
        "chart-sa",
        &[
            "--leader-election-namespace",
            &ns,
            "--policy-selector",
            &format!("kube-healer.test/owner={}", ctx.id),
        ],
        &[],
    )
    .await?;
    let work = ctx.namespace("w").await?;
    let policy = ctx.name("evicted");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [work]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}]}),
    )
    .await?;
    Api::<Pod>::namespaced(ctx.client.clone(), &work)
        .create(
            &PostParams::default(),
            &scenario_pod(&work, "left", Some(&ctx.name("n1")), &Scenario::evicted()),
        )
        .await?;
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Succeeded, "Completed".into()),
        "{:?}",
        phase_reason(&recs[0])
    );

    // 5. Uninstall (the operator stopped first: its permissions go with the release): the
    //    release's objects go, the CRDs (and every policy and record) stay.
    drop(op);
    helm(
        cluster,
        &["uninstall", "kh", "-n", &ns, "--wait", "--timeout", "60s"],
    )?;
    ensure!(
        crds.get_opt("healingpolicies.healing.kubehealer.io")
            .await?
            .is_some(),
        "CRD kept"
    );
    ensure!(policies.get_opt(&policy).await?.is_some(), "policies kept");
    wait::until("the operator pods to go", HEAL, || async {
        Ok(pods.list(&operator_pods).await?.items.is_empty().then_some(()))
    })
    .await?;
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
