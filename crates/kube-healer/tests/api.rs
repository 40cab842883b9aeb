//! The HealingPolicy and HealingAction API on the real API server: the CRDs install, every
//! example applies, invalid policies are refused with messages that name the field and the fix,
//! and `kubectl get` / `kubectl explain` read well.
//!
//! Its own cluster: `kubectl get ha` must show the test's record as its first row and a field
//! selector over every record must find that one alone, so no other test may write HealingActions
//! on the cluster; and its policies (the examples, verbatim) have fixed names and no owner.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use kube_healer_api::record::{ActionPhase, Evidence, HealingActionStatus, TargetRef};
use kube_healer_api::{
    ActionKind, FailureClass, HealingAction, HealingActionSpec, HealingPolicy, NodeJob, TargetKind,
};
use kube_healer_testenv::ClusterOptions;
use kube_healer_testenv::harness::{Ctx, test};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test("every_example_policy_applies_and_reads_back", examples_apply),
            test(
                "invalid_policies_are_refused_with_a_message_naming_field_and_fix",
                invalid_policies_refused,
            ),
            test(
                "kubectl_get_shows_the_columns_that_answer_at_a_glance",
                kubectl_columns,
            ),
            test("kubectl_explain_teaches_the_api", kubectl_explain),
        ],
    )
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(client, &crds).await?;
    Ok(())
}

fn policies(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<HealingPolicy>(&()))
}

/// Applies a policy given as YAML the way `kubectl apply --server-side` does, with strict field
/// validation (unknown fields are errors, as kubectl makes them by default).
async fn apply_yaml(client: &Client, yaml: &str) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_yaml::from_str(yaml).expect("test YAML parses");
    let name = object.metadata.name.clone().expect("test YAML has a name");
    let params = PatchParams::apply("kube-healer-test").validation_strict();
    policies(client)
        .patch(&name, &params, &Patch::Apply(&object))
        .await
}

async fn examples_apply(ctx: Ctx) -> anyhow::Result<()> {
    install_crds(&ctx.client).await?;
    let dir = kube_healer_testenv::binaries::repo_root().join("examples");
    let dir = dir.display();
    let mut applied = 0;
    for entry in std::fs::read_dir(dir.to_string())? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let yaml = std::fs::read_to_string(&path)?;
        let stored = apply_yaml(&ctx.client, &yaml)
            .await
            .with_context(|| format!("applying {}", path.display()))?;
        // What the API server stored reads back into the Rust types, and nothing was pruned.
        let typed: HealingPolicy = serde_json::from_value(serde_json::to_value(&stored)?)
            .with_context(|| format!("reading back {}", path.display()))?;
        let given: serde_yaml::Value = serde_yaml::from_str(&yaml)?;
        let given_spec = serde_json::to_value(&given["spec"])?;
        let stored_spec = serde_json::to_value(&stored.data["spec"])?;
        ensure!(
            json_contains(&stored_spec, &given_spec),
            "{}: the API server dropped or changed fields:\n given: {given_spec}\n stored: {stored_spec}",
            path.display()
        );
        ensure!(!typed.spec.conditions.is_empty() && !typed.spec.actions.is_empty());
        applied += 1;
    }
    ensure!(applied >= 8, "only {applied} examples found in {dir}");
    // The NodeJobs the examples name apply too, and read back whole.
    let node_jobs: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<NodeJob>(&()));
    let mut defined = 0;
    for entry in std::fs::read_dir(format!("{dir}/node-jobs"))? {
        let path = entry?.path();
        let object: DynamicObject = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let name = object.metadata.name.clone().context("a NodeJob's name")?;
        let params = PatchParams::apply("kube-healer-test").validation_strict();
        let stored = node_jobs
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {}", path.display()))?;
        ensure!(
            json_contains(&stored.data["spec"], &object.data["spec"]),
            "{}: the API server dropped or changed fields",
            path.display()
        );
        defined += 1;
    }
    ensure!(defined >= 1, "no NodeJob examples in {dir}/node-jobs");
    Ok(())
}

/// Whether every field of `want` is in `have` with the same value (`have` may hold defaults).
fn json_contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| json_contains(hv, v))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| json_contains(a, b))
        }
        _ => have == want,
    }
}

/// A policy document from a spec body (YAML, indented by four spaces under `spec:`).
fn policy_yaml(name: &str, spec: &str) -> String {
    let spec: String = spec
        .trim_matches('\n')
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!(
        "apiVersion: healing.kubehealer.io/v1alpha1\nkind: HealingPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

const POD_TARGET: &str = "target: {kind: Pod, namespaces: {include: [default]}}";
const NODE_TARGET: &str = "target: {kind: Node, selector: {matchLabels: {pool: a}}}";

/// (what is wrong, the spec, a fragment the API server's message must contain)
fn invalid_cases() -> Vec<(&'static str, String, &'static str)> {
    let pod = |rest: &str| format!("{POD_TARGET}\n{rest}");
    let node = |rest: &str| format!("{NODE_TARGET}\n{rest}");
    let act = "actions: [{action: Event}]";
    let cond = "conditions: [{class: StuckTerminating}]";
    vec![
        (
            "no target",
            format!("{cond}\n{act}"),
            "spec.target: Required value",
        ),
        (
            "unknown target kind",
            format!("target: {{kind: Deployment}}\n{cond}\n{act}"),
            "Unsupported value: \"Deployment\"",
        ),
        (
            "no conditions",
            pod(&format!("conditions: []\n{act}")),
            "spec.conditions must list at least one failure class",
        ),
        (
            "no actions",
            pod(&format!("{cond}\nactions: []")),
            "spec.actions must list at least one step",
        ),
        (
            "unknown class",
            pod(&format!("conditions: [{{class: Flaky}}]\n{act}")),
            "Unsupported value: \"Flaky\"",
        ),
        (
            "duration without unit",
            pod(&format!(
                "conditions: [{{class: StuckTerminating, for: \"5\"}}]\n{act}"
            )),
            "spec.conditions[0].for: Invalid value",
        ),
        (
            "negative duration",
            pod(&format!(
                "conditions: [{{class: StuckTerminating, for: -1m}}]\n{act}"
            )),
            "must be a positive duration such as 30s, 5m or 1h30m",
        ),
        (
            "zero duration",
            pod(&format!(
                "conditions: [{{class: StuckTerminating, for: 0s}}]\n{act}"
            )),
            "must be a positive duration",
        ),
        (
            "prose duration",
            pod(&format!(
                "conditions: [{{class: StuckTerminating, for: 5 minutes}}]\n{act}"
            )),
            "must be a positive duration",
        ),
        (
            "duration in days",
            pod(&format!(
                "{cond}\nactions: [{{action: Event, escalateAfter: 1d}}]"
            )),
            "spec.actions[0].escalateAfter: Invalid value",
        ),
        (
            "Cordon on a pod",
            pod(&format!(
                "{cond}\nactions: [{{action: Event}}, {{action: Cordon}}]"
            )),
            "spec.actions: a Pod policy takes only these actions: Event, Evict, Delete, ForceDelete, Reschedule, RestartOwner; the others need spec.target.kind: Node",
        ),
        (
            "NoExecute taint without the acknowledgement",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: Taint, taint: {key: kube-healer/unhealthy, effect: NoExecute}}]",
            ),
            "spec.actions[0].taint: Invalid value: effect NoExecute makes the kubelet evict every pod that does not tolerate the taint at once, with no PodDisruptionBudget: set acknowledgeNoExecute: true to mean it",
        ),
        (
            "a window that is no time of day",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: Cordon}]\nsafety: {windows: [{start: \"25:00\", end: \"05:00\"}]}",
            ),
            "must be a time of day as HH:MM on a 24-hour clock, such as 02:00",
        ),
        (
            "ForceDelete on a node",
            node("conditions: [{class: NodeNotReady}]\nactions: [{action: ForceDelete}]"),
            "spec.actions: a Node policy takes only these actions: Event, Cordon, Taint, Drain, RunJob",
        ),
        (
            "Drain on a pod",
            pod(&format!("{cond}\nactions: [{{action: Drain}}]")),
            "spec.actions: a Pod policy takes only these actions",
        ),
        (
            "pod class on a node",
            node(&format!("conditions: [{{class: CrashLoop}}]\n{act}")),
            "spec.conditions: a Node policy takes only these classes: NodeNotReady",
        ),
        (
            "node class on a pod",
            pod(&format!("conditions: [{{class: NodeFlapping}}]\n{act}")),
            "spec.conditions: a Pod policy takes only these classes: Unschedulable",
        ),
        (
            "minRestarts on another class",
            pod(&format!(
                "conditions: [{{class: StuckTerminating, minRestarts: 3}}]\n{act}"
            )),
            "minRestarts applies only to class CrashLoop",
        ),
        (
            "transitions on another class",
            pod(&format!(
                "conditions: [{{class: CrashLoop, transitions: 3}}]\n{act}"
            )),
            "transitions applies only to class NodeFlapping",
        ),
        (
            "minFailures on another class",
            pod(&format!(
                "conditions: [{{class: CrashLoop, minFailures: 3}}]\n{act}"
            )),
            "minFailures applies only to class ProbeFailure",
        ),
        (
            "window on another class",
            pod(&format!("conditions: [{{class: CrashLoop, window: 1h}}]\n{act}")),
            "window applies only to classes NodeFlapping, SystemOOM, EventPattern",
        ),
        (
            "count on another class",
            node(&format!("conditions: [{{class: NodeNotReady, count: 3}}]\n{act}")),
            "count applies only to classes SystemOOM, EventPattern",
        ),
        (
            "EventPattern without a pattern",
            pod(&format!("conditions: [{{class: EventPattern, count: 3}}]\n{act}")),
            "class EventPattern needs reason or messagePattern",
        ),
        (
            "invalid regular expression",
            pod(&format!(
                "conditions: [{{class: EventPattern, messagePattern: \"([a-z\"}}]\n{act}"
            )),
            "spec.conditions[0].messagePattern",
        ),
        (
            "NodeCondition without a type",
            node(&format!("conditions: [{{class: NodeCondition}}]\n{act}")),
            "class NodeCondition needs conditionType, for example KernelDeadlock",
        ),
        (
            "NodePressure with another type",
            node(&format!(
                "conditions: [{{class: NodePressure, conditionType: KernelDeadlock}}]\n{act}"
            )),
            "for class NodePressure, conditionType must be MemoryPressure, DiskPressure or PIDPressure",
        ),
        (
            "unknown condition status",
            node(&format!(
                "conditions: [{{class: NodeCondition, conditionType: KernelDeadlock, conditionStatus: Maybe}}]\n{act}"
            )),
            "Unsupported value: \"Maybe\"",
        ),
        (
            "unknown action",
            pod(&format!("{cond}\nactions: [{{action: Reboot}}]")),
            "Unsupported value: \"Reboot\"",
        ),
        (
            "Taint without a taint",
            node("conditions: [{class: NodeNotReady}]\nactions: [{action: Taint}]"),
            "action Taint needs taint: {key, effect}",
        ),
        (
            "taint parameters on Cordon",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: Cordon, taint: {key: a, effect: NoSchedule}}]",
            ),
            "taint parameters apply only to action Taint",
        ),
        (
            "unknown taint effect",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: Taint, taint: {key: a, effect: Sometimes}}]",
            ),
            "Unsupported value: \"Sometimes\"",
        ),
        (
            "invalid taint key",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: Taint, taint: {key: \"bad key!\", effect: NoSchedule}}]",
            ),
            "must be a qualified name such as kube-healer/unhealthy",
        ),
        (
            "RunJob without a job",
            node("conditions: [{class: NodeNotReady}]\nactions: [{action: RunJob}]"),
            "action RunJob needs runJob: {nodeJob: <name of a NodeJob>}",
        ),
        (
            "RunJob naming no NodeJob",
            node("conditions: [{class: NodeNotReady}]\nactions: [{action: RunJob, runJob: {}}]"),
            "runJob needs nodeJob: the name of a NodeJob the cluster admin defined",
        ),
        (
            "RunJob with a pod spec of its own (before NodeJobs)",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: RunJob, runJob: {namespace: jobs, podSpec: {hostPID: true}, activeDeadlineSeconds: 60}}]",
            ),
            "runJob no longer takes a pod spec: node jobs are defined by the cluster admin as NodeJob resources",
        ),
        (
            "Remediate without a template",
            node("conditions: [{class: PLEGUnhealthy}]\nactions: [{action: Remediate}]"),
            "action Remediate needs remediate: {template: {apiVersion, kind, name, namespace}}",
        ),
        (
            "Remediate naming a remediation, not its template",
            node(
                "conditions: [{class: PLEGUnhealthy}]\nactions: [{action: Remediate, remediate: {template: {apiVersion: self-node-remediation.medik8s.io/v1alpha1, kind: SelfNodeRemediation, name: a, namespace: medik8s}}}]",
            ),
            "kind must be a remediation template's, ending in Template",
        ),
        (
            "replace parameters on Cordon",
            node(
                "conditions: [{class: PLEGUnhealthy}]\nactions: [{action: Cordon, replace: {machine: Delete}}]",
            ),
            "replace parameters apply only to action Replace",
        ),
        (
            "invalid NodeJob name",
            node(
                "conditions: [{class: NodeNotReady}]\nactions: [{action: RunJob, runJob: {nodeJob: Bad_Name}}]",
            ),
            "must be a NodeJob's name",
        ),
        (
            "forceDelete parameters on Delete",
            pod(&format!(
                "{cond}\nactions: [{{action: Delete, forceDelete: {{withoutFencing: true}}}}]"
            )),
            "forceDelete parameters apply only to action ForceDelete",
        ),
        (
            "evict parameters on Delete",
            pod(&format!(
                "{cond}\nactions: [{{action: Delete, evict: {{pdbWait: 1m}}}}]"
            )),
            "evict parameters apply only to action Evict",
        ),
        (
            "grace period of zero on Delete",
            pod(&format!(
                "{cond}\nactions: [{{action: Delete, delete: {{gracePeriodSeconds: 0}}}}]"
            )),
            "spec.actions[0].delete.gracePeriodSeconds: Invalid value",
        ),
        (
            "percent above 100",
            node(&format!(
                "conditions: [{{class: NodeNotReady}}]\n{act}\nsafety: {{maxUnhealthy: 150%}}"
            )),
            "must be a count (0 or more) or a percent from 0% to 100%, such as 3 or 30%",
        ),
        (
            "negative count",
            node(&format!(
                "conditions: [{{class: NodeNotReady}}]\n{act}\nsafety: {{maxUnhealthy: -1}}"
            )),
            "must be a count (0 or more) or a percent from 0% to 100%",
        ),
        (
            "maxUnhealthy on a pod policy",
            pod(&format!("{cond}\n{act}\nsafety: {{maxUnhealthy: 10%}}")),
            "spec.safety.maxUnhealthy applies only to Node policies",
        ),
        (
            "maxDisruptedPerWorkload of none",
            pod(&format!("{cond}\n{act}\nsafety: {{maxDisruptedPerWorkload: 0%}}")),
            "must be a count (1 or more) or a percent from 1% to 100%, such as 2 or 25%",
        ),
        (
            "maxDisruptedPerWorkload on a node policy",
            node(&format!(
                "conditions: [{{class: NodeNotReady}}]\n{act}\nsafety: {{maxDisruptedPerWorkload: 1}}"
            )),
            "spec.safety.maxDisruptedPerWorkload applies only to Pod policies",
        ),
        (
            "podsAlike on a node policy",
            node(&format!(
                "conditions: [{{class: NodeNotReady}}]\n{act}\nsafety: {{podsAlike: {{minPods: 3}}}}"
            )),
            "spec.safety.podsAlike applies only to Pod policies",
        ),
        (
            "podsAlike of more workloads than pods",
            pod(&format!(
                "{cond}\n{act}\nsafety: {{podsAlike: {{minPods: 3, minWorkloads: 4}}}}"
            )),
            "spec.safety.podsAlike.minWorkloads cannot exceed minPods",
        ),
        (
            "podsAlike of one pod",
            pod(&format!("{cond}\n{act}\nsafety: {{podsAlike: {{minPods: 1}}}}")),
            "spec.safety.podsAlike.minPods: Invalid value",
        ),
        (
            "maxConcurrent of zero",
            pod(&format!("{cond}\n{act}\nsafety: {{maxConcurrent: 0}}")),
            "spec.safety.maxConcurrent: Invalid value",
        ),
        (
            "rate of zero actions",
            pod(&format!(
                "{cond}\n{act}\nsafety: {{rate: {{actions: 0, per: 1m}}}}"
            )),
            "spec.safety.rate.actions: Invalid value",
        ),
        (
            "rate over no time",
            pod(&format!(
                "{cond}\n{act}\nsafety: {{rate: {{actions: 5, per: 0s}}}}"
            )),
            "spec.safety.rate.per: Invalid value",
        ),
        (
            "cooldown in prose",
            pod(&format!("{cond}\n{act}\nsafety: {{cooldown: soon}}")),
            "spec.safety.cooldown: Invalid value",
        ),
        (
            "maxAttempts of zero",
            pod(&format!("{cond}\n{act}\nsafety: {{maxAttempts: 0}}")),
            "spec.safety.maxAttempts: Invalid value",
        ),
        (
            "every pod, no limits",
            format!("target: {{kind: Pod}}\n{cond}\n{act}"),
            "spec.target selects every Pod in the cluster: narrow it with a selector, namespaceSelector or namespaces.include, or set spec.safety.dryRun: true, or set explicit limits spec.safety.maxConcurrent and spec.safety.rate",
        ),
        (
            "every pod, empty selector",
            format!("target: {{kind: Pod, selector: {{}}}}\n{cond}\n{act}\nsafety: {{maxConcurrent: 2}}"),
            "spec.target selects every Pod in the cluster",
        ),
        (
            "every node, no maxUnhealthy",
            format!(
                "target: {{kind: Node}}\nconditions: [{{class: NodeNotReady}}]\n{act}\nsafety: {{maxConcurrent: 1, rate: {{actions: 1, per: 1h}}}}"
            ),
            "and spec.safety.maxUnhealthy",
        ),
        (
            "namespace filter on a node policy",
            format!(
                "target: {{kind: Node, selector: {{matchLabels: {{a: b}}}}, namespaces: {{include: [default]}}}}\nconditions: [{{class: NodeNotReady}}]\n{act}"
            ),
            "namespaceSelector, namespaces and ownerKinds apply only to kind Pod",
        ),
        (
            "too many conditions",
            pod(&format!(
                "conditions: [{}]\n{act}",
                vec!["{class: Evicted}"; 17].join(", ")
            )),
            "spec.conditions: Too many: 17: must have at most 16 items",
        ),
        (
            "misspelt field",
            pod(&format!("{cond}\n{act}\nsafety: {{dryrun: true}}")),
            ".spec.safety.dryrun: field not declared in schema",
        ),
    ]
}

async fn invalid_policies_refused(ctx: Ctx) -> anyhow::Result<()> {
    install_crds(&ctx.client).await?;
    let cases = invalid_cases();
    ensure!(cases.len() >= 30, "only {} invalid cases", cases.len());
    let mut failures = Vec::new();
    for (i, (what, spec, expected)) in cases.iter().enumerate() {
        let yaml = policy_yaml(&format!("invalid-{i}"), spec);
        match apply_yaml(&ctx.client, &yaml).await {
            Ok(_) => failures.push(format!("{what}: accepted\n{yaml}")),
            // 422 from validation; server-side apply answers an unknown field with a 500 whose
            // message names the field ("field not declared in schema").
            Err(kube::Error::Api(status)) if [400, 422, 500].contains(&status.code) => {
                if !status.message.contains(expected) {
                    failures.push(format!(
                        "{what}: message lacks {expected:?}:\n  {}",
                        status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{what}: unexpected error {e}")),
        }
    }
    // The valid twin of the cases above is accepted: the refusals are not a broken schema.
    let valid = policy_yaml(
        "valid-twin",
        &format!(
            "{POD_TARGET}\nconditions: [{{class: StuckTerminating, for: 5m}}]\nactions: [{{action: Event}}]"
        ),
    );
    if let Err(e) = apply_yaml(&ctx.client, &valid).await {
        failures.push(format!("a valid policy was refused: {e}"));
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
    println!(
        "    {} invalid policies refused with the expected message",
        cases.len()
    );
    Ok(())
}

async fn kubectl_columns(ctx: Ctx) -> anyhow::Result<()> {
    install_crds(&ctx.client).await?;
    let yaml = policy_yaml(
        "columns",
        &format!(
            "{POD_TARGET}\nconditions: [{{class: StuckTerminating}}]\nactions: [{{action: ForceDelete}}]\nsafety: {{dryRun: true}}"
        ),
    );
    apply_yaml(&ctx.client, &yaml).await?;

    let actions: Api<HealingAction> = Api::all(ctx.client.clone());
    let mut record = HealingAction::new(
        "columns-web-1",
        HealingActionSpec {
            policy: "columns".into(),
            policy_generation: Some(1),
            target: TargetRef::new(TargetKind::Pod, Some("default"), "web-1", "uid-1", Some("node-a")),
            class: FailureClass::StuckTerminating,
            action: ActionKind::ForceDelete,
            step: 1,
            dry_run: true,
            failing_since: None,
            decided_at: Time(k8s_openapi::jiff::Timestamp::now()),
            evidence: Evidence {
                summary: "terminating 3m past its deletionTimestamp".into(),
                ..Default::default()
            },
            members: Vec::new(),
            // A record standing for a cause of 12 targets: its member count is a column.
            cause: Some(kube_healer_api::record::CauseEvidence {
                members: 12,
                sample: vec!["pod/default/web-1".into(), "pod/default/web-2".into()],
            }),
        },
    );
    record.meta_mut().labels =
        Some([(kube_healer_api::POLICY_LABEL.to_string(), "columns".to_string())].into());
    let created = actions.create(&PostParams::default(), &record).await?;
    let status = HealingActionStatus {
        phase: ActionPhase::Skipped,
        reason: Some(kube_healer_api::reasons::DRY_RUN.into()),
        message: Some("dry run: would force-delete pod/default/web-1".into()),
        start_time: None,
        finish_time: None,
        attempts: 0,
        members: Vec::new(),
    };
    let name = created
        .metadata
        .name
        .clone()
        .context("created record has a name")?;
    actions
        .patch_status(
            &name,
            &PatchParams::apply("kube-healer-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction", "status": status,
            })),
        )
        .await?;

    let kubectl = |args: &[&str]| ctx.cluster.kubectl(args).map_err(anyhow::Error::from);
    let out = tokio::task::block_in_place(|| kubectl(&["get", "ha"]))?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header
            == [
                "NAME", "POLICY", "TARGET", "CLASS", "ACTION", "PHASE", "REASON", "MEMBERS", "AGE"
            ],
        "ha columns: {out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        row[..8]
            == [
                "columns-web-1",
                "columns",
                "pod/default/web-1",
                "StuckTerminating",
                "ForceDelete",
                "Skipped",
                "DryRun",
                "12"
            ],
        "ha row: {out}"
    );
    let out = tokio::task::block_in_place(|| kubectl(&["get", "hp", "columns"]))?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header == ["NAME", "TARGET", "DRY-RUN", "SUSPENDED", "ACTIONS", "AGE"],
        "hp columns: {out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(row[..4] == ["columns", "Pod", "true", "false"], "hp row: {out}");
    // Field selectors declared as selectableFields work.
    let out = tokio::task::block_in_place(|| {
        kubectl(&[
            "get",
            "ha",
            "--field-selector",
            "spec.class=StuckTerminating",
            "-o",
            "name",
        ])
    })?;
    ensure!(
        out.trim() == "healingaction.healing.kubehealer.io/columns-web-1",
        "field selector: {out}"
    );
    let out = tokio::task::block_in_place(|| {
        kubectl(&[
            "get",
            "ha",
            "--field-selector",
            "spec.class=Evicted",
            "-o",
            "name",
        ])
    })?;
    ensure!(
        out.trim().is_empty(),
        "field selector matched the wrong class: {out}"
    );
    Ok(())
}

async fn kubectl_explain(ctx: Ctx) -> anyhow::Result<()> {
    install_crds(&ctx.client).await?;
    let kubectl = |args: &[&str]| ctx.cluster.kubectl(args).map_err(anyhow::Error::from);
    // kubectl explain reads the OpenAPI v3 document, published a moment after the CRD.
    let out = kube_healer_testenv::wait::until(
        "explain to know healingpolicy",
        Duration::from_secs(30),
        || async {
            Ok(tokio::task::block_in_place(|| kubectl(&["explain", "healingpolicy.spec.actions"])).ok())
        },
    )
    .await?;
    for expected in [
        "escalation ladder",
        "escalateAfter",
        "Evict, Delete, ForceDelete",
        "runJob",
        "<[]Object>",
    ] {
        ensure!(
            out.contains(expected),
            "kubectl explain healingpolicy.spec.actions lacks {expected:?}:\n{out}"
        );
    }
    let out = tokio::task::block_in_place(|| kubectl(&["explain", "hp.spec.safety.maxUnhealthy"]))?;
    ensure!(out.contains("partition"), "maxUnhealthy explanation:\n{out}");
    Ok(())
}
