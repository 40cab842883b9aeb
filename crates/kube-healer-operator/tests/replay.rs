//! Kept recordings of the e2e storm scenarios, replayed by the engine in milliseconds: the safety
//! outcomes hold without a cluster. Each was made by the flight recorder of the operator in
//! crates/kube-healer/tests/{storm,budget,waves}.rs (`KUBE_HEALER_KEEP_RECORDING=DIR`), where the
//! same replay is also checked against the live run's records.
//!
//! - storm: 6 of 10 nodes stop posting status together, pods on them; then one node alone.
//! - budget: 5 nodes fail at once under three policies, the cluster budget is 2 nodes.
//! - waves: 6 of 10 nodes lose their heartbeats 4 s apart, twice (a slow etcd).
//! - pod-storm: every pod of five Deployments in two namespaces crash-loops for one cause (a
//!   DNS lookup timing out) under RestartOwner and Delete policies; a sixth Deployment crashes
//!   alone, for its own reason (crates/kube-healer/tests/pod_storm.rs).
//! - maintenance: three nodes upgraded (drain, silence, uncordon) beside a node failing alone
//!   whose cordon a person lifts; a budget of 2 filled by a person's cordons; five nodes silent
//!   under five tools' signals (crates/kube-healer/tests/maintenance.rs).
//! - storm-writes: 500 pods of ten Deployments in two namespaces crash-loop on one expired
//!   certificate under a Delete policy in each; a lone Deployment crashes for its own reason in
//!   a third (crates/kube-healer/tests/storm_writes.rs).
//! - sick-node: four workloads each with a pod fine on one node and one stuck in
//!   ContainerCreating on another, a NodeBlackHole policy selecting the nodes; a pod
//!   crash-looping alone on a third (e2e/sick_node.rs).
//! - pods-alike: two workloads' four pods crash alike under a policy whose own thresholds ask
//!   for 4 pods of 2 workloads; two others' four, told differently, under a policy with the
//!   operator's (e2e/pods_alike.rs).
//! - rollout: a Deployment's new template crashes while its old pods run; a pod crash-looping
//!   alone beside it (e2e/rollout.rs). Recorded on the shared e2e cluster: other tests' pods
//!   are in it too, their policies not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube_healer_api::{ActionKind, TargetKind};
use kube_healer_operator::flight::read;
use kube_healer_operator::flight::replay::{Decided, Replay, Setup};
use serde_json::json;

fn recording(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"))
        .join("tests/recordings")
        .join(name)
}

/// The tests' operator flags: a 2 s clear debounce, the default budget unless given.
fn setup(budget: &str) -> Setup {
    Setup {
        max_nodes_out_of_service: Some(budget.into()),
        clear_debounce_secs: 2,
        ..Setup::default()
    }
}

fn replay(name: &str, setup: Setup) -> Replay {
    let mut replay = Replay::new(setup, None);
    let mut reader = read::open(&recording(name)).expect("the recording opens");
    for frame in reader.by_ref() {
        replay
            .feed(frame.expect("a frame"))
            .expect("a frame the engine takes");
    }
    replay
}

fn acted(decisions: &[Decided]) -> Vec<&Decided> {
    decisions.iter().filter(|d| d.verdict == "act").collect()
}

/// Exactly one hold among `decisions`: the cause's record (Correlated), its message saying `says`.
fn one_cause_record(decisions: &[Decided], says: &str) {
    let held: Vec<&Decided> = decisions.iter().filter(|d| d.verdict == "hold").collect();
    assert_eq!(held.len(), 1, "one record for the cause: {held:#?}");
    assert_eq!(held[0].reason, Some("Correlated"));
    let message = held[0].message.as_deref().unwrap_or_default();
    assert!(message.contains(says), "{held:#?}");
}

#[test]
fn the_storm_holds_every_node_and_pod_and_heals_the_lone_node_after_it() {
    let r = replay("storm", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    assert_eq!(acted.len(), 1, "{acted:#?}");
    assert!(
        acted[0].name.ends_with("-s9") && acted[0].kind == TargetKind::Node,
        "{acted:#?}"
    );
    let held: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.verdict == "hold")
        .inspect(|d| assert_eq!(d.reason, Some("Correlated"), "{d:#?}"))
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(held.len(), 9, "6 nodes and 3 pods held: {held:?}");
    let s = r.summary();
    assert_eq!((s.pods_removed, s.nodes_out_peak), (0, 1));
    assert!(!r.causes().is_empty());
}

#[test]
fn the_budget_holds_two_nodes_out_at_most_and_passes_a_freed_place_on() {
    let r = replay("budget", setup("2"));
    let s = r.summary();
    assert_eq!(s.nodes_out_peak, 2, "{s:#?}");
    assert_eq!(s.held.get("BudgetExceeded"), Some(&3), "{s:#?}");
    // Two cordoned at once; the third took the place the recovered one freed.
    assert_eq!(acted(r.decisions()).len(), 3, "{:#?}", r.decisions());
}

#[test]
fn waves_of_a_slow_etcd_cordon_nothing_and_each_target_is_decided_once_a_wave() {
    let r = replay("waves", setup("10%"));
    let s = r.summary();
    assert_eq!(
        (s.acted, s.pods_removed, s.nodes_out_peak),
        (0, 0, 0),
        "{:#?}",
        r.decisions()
    );
    let mut records: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for d in r.decisions() {
        records
            .entry((d.policy.as_str(), d.name.as_str()))
            .or_default()
            .insert(d.record.as_str());
    }
    assert!(!records.is_empty());
    let repeated: Vec<_> = records.iter().filter(|(_, r)| r.len() > 2).collect();
    assert!(
        repeated.is_empty(),
        "decided more than once a wave: {repeated:#?}"
    );
}

#[test]
fn the_pod_storm_is_one_cause_and_only_the_lone_crash_loop_is_healed() {
    let r = replay("pod-storm", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    assert!(!acted.is_empty(), "the lone crash loop is healed");
    assert!(
        acted.iter().all(|d| d.name.starts_with("lonely-")),
        "only the lone crash loop is acted on: {acted:#?}"
    );
    // One record per policy for the cause, not one per pod it holds.
    let held: Vec<&Decided> = decisions.iter().filter(|d| d.verdict == "hold").collect();
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(held.iter().all(|d| d.reason == Some("Correlated")), "{held:#?}");
    assert_eq!(r.summary().pods_removed, acted.len());
}

/// The same recording without the rule (thresholds no storm reaches): the storm is healed pod
/// by pod. RestartOwner on each of its pods; Delete on one pod of each two-pod Deployment, the
/// other waiting on maxDisruptedPerWorkload (the recording has no replacement showing its fate:
/// live, the storm was held).
#[test]
fn without_the_pods_alike_rule_the_pod_storm_is_healed_pod_by_pod() {
    let mut s = setup("10%");
    s.pods_alike.pods = 1000;
    let r = replay("pod-storm", s);
    let storm = |verdict: &str| -> Vec<&Decided> {
        r.decisions()
            .iter()
            .filter(|d| d.verdict == verdict && !d.name.starts_with("lonely-"))
            .collect()
    };
    let acted = storm("act");
    let restarts = acted
        .iter()
        .filter(|d| d.action == ActionKind::RestartOwner)
        .count();
    assert_eq!((acted.len(), restarts), (8, 6), "{acted:#?}");
    let held = storm("hold");
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(
        held.iter().all(|d| d.reason == Some("WorkloadLimit")),
        "{held:#?}"
    );
}

#[test]
fn a_replay_decides_the_same_each_time() {
    let a = replay("waves", setup("10%"));
    let b = replay("waves", setup("10%"));
    assert_eq!(a.decisions(), b.decisions());
    assert_eq!(a.causes(), b.causes());
}

/// The question the recorder is for: a new policy, tried against the storm. Cordoning
/// unreachable nodes after 5 s instead of 10 s is still held by the storm guard; the recorded
/// policies make no decision.
#[test]
fn a_candidate_policy_replayed_against_the_storm_is_held_by_it() {
    let candidate: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "candidate", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": "5s"}],
            "actions": [{"action": "Cordon"}], "safety": {"maxUnhealthy": "100%", "maxConcurrent": 10}}}))
    .unwrap();
    let mut s = setup("10%");
    s.policies = Some(vec![candidate]);
    let r = replay("storm", s);
    let decisions = r.decisions();
    assert!(
        decisions.iter().all(|d| d.policy == "candidate"),
        "{decisions:#?}"
    );
    let storm: Vec<_> = decisions.iter().filter(|d| !d.name.ends_with("-s9")).collect();
    assert_eq!(storm.len(), 6, "{decisions:#?}");
    assert!(storm.iter().all(|d| d.reason == Some("Correlated")), "{storm:#?}");
}

/// Nodes under someone else's maintenance get no action, nor do the pods they took down; a node
/// failing alone beside them is healed, and its cordon, once a person lifts it, is not put back;
/// a budget filled by a person's cordons holds a Ready node until they are lifted.
#[test]
fn nodes_under_maintenance_are_left_to_it_and_the_person_wins() {
    let mut s = setup("20%");
    s.planned.taints = vec!["example.com/maintenance".into()];
    let r = replay("maintenance", s);
    let decisions = r.decisions();
    let on = |suffix: &str| -> Vec<(&str, &str, Option<&str>)> {
        decisions
            .iter()
            .filter(|d| d.name.ends_with(suffix))
            .map(|d| (d.action.as_str(), d.verdict, d.reason))
            .collect()
    };
    for node in ["-m3", "-m4", "-m6", "-m7", "-m8"] {
        assert_eq!(on(node), [("Cordon", "hold", Some("Maintenance"))], "{node}");
    }
    // The upgraded nodes, held for the person's cordon; then, failing again, for the resource
    // another tool took them down with (read from its watch, recorded with the rest).
    let said = |suffix: &str| -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.name.ends_with(suffix))
            .map(|d| d.message.as_deref().unwrap_or_default())
            .collect()
    };
    for (node, resource) in [
        ("-m0", "Karpenter is deleting NodeClaim"),
        ("-m1", "carries cluster.x-k8s.io/skip-remediation"),
        ("-m2", "NodeMaintenance"),
    ] {
        let hold = ("Cordon", "hold", Some("Maintenance"));
        assert_eq!(on(node), [hold, hold], "{node}");
        let messages = said(node);
        assert!(
            messages[0].contains("cordoned by someone else"),
            "{node}: {messages:?}"
        );
        assert!(messages[1].contains(resource), "{node}: {messages:?}");
    }
    assert_eq!(
        on("-m9"),
        [("Cordon", "act", None), ("Drain", "hold", Some("Overridden"))]
    );
    assert_eq!(
        on("-npd"),
        [
            ("Cordon", "hold", Some("BudgetExceeded")),
            ("Cordon", "act", None)
        ]
    );
    // The pods: those lost with the control node are deleted, but its DaemonSet's and the one
    // pinned to it; those of the maintained nodes are held, once per node and failure.
    let pods: Vec<&Decided> = decisions.iter().filter(|d| d.kind == TargetKind::Pod).collect();
    for d in &pods {
        let stays = d.name.starts_with("agent-") || d.name.starts_with("pinned-");
        let expected = match (stays, d.verdict) {
            (true, "hold") => matches!(d.reason, Some("Maintenance") | Some("Unsafe")),
            (false, "act") => true,
            _ => false,
        };
        assert!(expected, "{d:#?}");
    }
    assert!(
        pods.iter().any(|d| d.name.starts_with("pinned-")
            && d.message
                .as_deref()
                .is_some_and(|m| m.contains("pinned to that node"))),
        "{pods:#?}"
    );
    // Each (node, signal) held once, whatever the number of its pods.
    let held: Vec<&str> = pods
        .iter()
        .filter(|d| d.reason == Some("Maintenance"))
        .filter_map(|d| d.message.as_deref()?.split("; the pods").next())
        .collect();
    let once: std::collections::BTreeSet<&str> = held.iter().copied().collect();
    assert_eq!(
        once.len(),
        held.len(),
        "one record per maintained node and signal: {held:#?}"
    );
    assert_eq!(held.len(), 10, "{held:#?}");
    for signal in [
        "-m0 is under planned disruption: Karpenter is deleting NodeClaim",
        "-m1 is under planned disruption: Cluster API Machine",
    ] {
        assert!(held.iter().any(|h| h.contains(signal)), "{signal}: {held:#?}");
    }
}

/// One record holds the sick node's four pods, naming the node; the node is cordoned as a
/// NodeBlackHole, and the lone crash loop is healed: nothing else is acted on.
#[test]
fn a_sick_node_s_pods_are_held_as_one_cause_the_node_is_cordoned_and_the_lone_crash_loop_is_healed() {
    let r = replay("sick-node", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    assert_eq!(acted.len(), 2, "{decisions:#?}");
    let by_kind = |kind: TargetKind| acted.iter().find(|d| d.kind == kind).copied();
    assert_eq!(
        by_kind(TargetKind::Pod).map(|d| d.name.as_str()),
        Some("lonely"),
        "{acted:#?}"
    );
    let node = by_kind(TargetKind::Node).expect("the sick node acted on");
    assert!(node.name.ends_with("-sick"), "{node:#?}");
    assert_eq!(node.action, ActionKind::Cordon, "{node:#?}");
    one_cause_record(decisions, "fail on node t0-pods-of-four-workloads-s-sick");
    assert_eq!(r.summary().pods_removed, 1);
}

/// The failing rollout is held, the record naming its revision and saying to roll back; the
/// Deployment is not restarted, and the lone crash loop beside it is healed.
#[test]
fn a_failing_rollout_is_held_naming_its_revision_and_the_lone_crash_loop_is_healed() {
    let r = replay("rollout", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    assert_eq!(acted.len(), 1, "{decisions:#?}");
    assert_eq!(
        (acted[0].name.as_str(), acted[0].action.as_str()),
        ("api", "Delete")
    );
    let held: Vec<&Decided> = decisions.iter().filter(|d| d.verdict == "hold").collect();
    assert_eq!(held.len(), 1, "{held:#?}");
    let message = held[0].message.as_deref().unwrap_or_default();
    assert!(
        held[0].reason == Some("Correlated")
            && message.contains("at revision 5f84d798c4 fail while its pods at revision 56c87b7f5f run fine")
            && message.contains("kubectl rollout undo deployment/web"),
        "{held:#?}"
    );
}

/// A policy's own pods-alike thresholds: its four pods of two workloads are one cause, held in
/// one record; under the operator's thresholds, the other four are each healed.
#[test]
fn a_policy_s_own_pods_alike_thresholds_hold_its_pods_and_the_others_are_healed() {
    let r = replay("pods-alike", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    let names: BTreeSet<&str> = acted.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["feed-0", "feed-1", "mail-0", "mail-1"]),
        "{decisions:#?}"
    );
    one_cause_record(decisions, "4 pods of 2 workloads");
    assert_eq!(r.summary().pods_removed, 4);
}

/// 500 pods held by one cause: one record per policy that meets it, no storm pod acted on; only
/// the lone Deployment's pods are deleted.
#[test]
fn five_hundred_pods_of_one_cause_write_one_record_per_policy_and_none_is_acted_on() {
    let r = replay("storm-writes", setup("10%"));
    let decisions = r.decisions();
    let acted = acted(decisions);
    assert!(!acted.is_empty(), "the lone crash loop is healed: {decisions:#?}");
    assert!(acted.iter().all(|d| d.name.starts_with("lonely-")), "{acted:#?}");
    let held: Vec<&Decided> = decisions.iter().filter(|d| d.verdict == "hold").collect();
    let policies: BTreeSet<&str> = held.iter().map(|d| d.policy.as_str()).collect();
    assert_eq!(
        (held.len(), policies.len()),
        (2, 2),
        "one record per policy: {held:#?}"
    );
    assert!(held.iter().all(|d| d.reason == Some("Correlated")), "{held:#?}");
    assert_eq!(r.summary().pods_removed, acted.len());
}
