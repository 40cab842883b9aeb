//! Nodes failing the same way together are one cause: every node family (down, heartbeats,
//! flapping, one condition type, ...) is grouped, by zone first, then by pool, then cluster-wide, so a
//! zone's outage is held in that zone while a single node failing elsewhere is still healed.

use k8s_openapi::api::core::v1::Node;
use kube_healer_api::record::ConditionEvidence;
use kube_healer_api::{FailureClass, TargetKind};
use kube_healer_core::classify::{Domain, NodeFamily, Topology, ZONE_LABEL, correlate};
use kube_healer_core::convert::{Interner, node_view};
use kube_healer_core::{Correlated, CorrelatedCause, Finding, Subject};
use serde_json::json;

const T: i64 = 1_800_000_000;

fn finding(class: FailureClass, node: &str) -> Finding {
    Finding {
        class,
        subject: Subject {
            kind: TargetKind::Node,
            namespace: None,
            name: node.into(),
            uid: node.into(),
            node: Some(node.into()),
        },
        since: T,
        evidence: Default::default(),
        alike: None,
    }
}

/// A NodeCondition finding of this condition type, as the classifier writes its evidence.
fn condition(type_: &str, node: &str) -> Finding {
    let mut f = finding(FailureClass::NodeCondition, node);
    f.evidence.conditions.push(ConditionEvidence {
        type_: type_.into(),
        status: "True".into(),
        ..Default::default()
    });
    f
}

/// `count` nodes w0.. in the zones given, round robin (none: no zone label).
fn topology(count: usize, zones: &[&str]) -> Topology {
    Topology::of(&nodes(count, zones, &[]))
}

const POOL_LABEL: &str = "karpenter.sh/nodepool";

/// `count` nodes w0.. in the zones and pools given, each round robin.
fn nodes(count: usize, zones: &[&str], pools: &[&str]) -> Vec<kube_healer_core::view::NodeView> {
    let mut interner = Interner::default();
    (0..count)
        .map(|i| {
            let mut labels = json!({});
            if !zones.is_empty() {
                labels[ZONE_LABEL] = json!(zones[i % zones.len()]);
            }
            if !pools.is_empty() {
                labels[POOL_LABEL] = json!(pools[i / 2 % pools.len()]);
            }
            let node: Node = serde_json::from_value(
                json!({"metadata": {"name": format!("w{i}"), "uid": format!("w{i}"), "labels": labels}}),
            )
            .unwrap();
            node_view(&node, &mut interner).unwrap()
        })
        .collect()
}

fn causes(findings: &[Finding], topology: &Topology) -> Vec<Correlated> {
    correlate(findings, topology, &Default::default(), &[], &())
}

#[test]
fn one_condition_on_many_nodes_is_one_cause_and_types_do_not_add_up() {
    let ten = topology(10, &[]);
    // A bad node-problem-detector rollout: 4 of 10 nodes report KernelDeadlock.
    let rollout: Vec<Finding> = (0..4)
        .map(|i| condition("KernelDeadlock", &format!("w{i}")))
        .collect();
    let found = causes(&rollout, &ten);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].cause,
        CorrelatedCause::Nodes {
            family: NodeFamily::Condition("KernelDeadlock".into()),
            domain: None
        }
    );
    assert!(
        found[0]
            .message
            .contains("4 of 10 nodes are reporting KernelDeadlock together"),
        "{}",
        found[0].message
    );
    assert!(found[0].covers(&rollout[0]));
    assert!(
        !found[0].covers(&condition("KernelDeadlock", "w9")),
        "not a member"
    );
    assert!(
        !found[0].covers(&finding(FailureClass::HeartbeatLag, "w0")),
        "another family on a member node is not this cause"
    );
    // Two nodes with one problem and two with another: four node faults, no cause.
    let mixed = [
        condition("KernelDeadlock", "w0"),
        condition("KernelDeadlock", "w1"),
        condition("ReadonlyFilesystem", "w2"),
        condition("ReadonlyFilesystem", "w3"),
    ];
    assert!(causes(&mixed, &ten).is_empty());
}

#[test]
fn every_node_family_is_guarded() {
    let ten = topology(10, &[]);
    for class in [
        FailureClass::NodeNotReady,
        FailureClass::HeartbeatLag,
        FailureClass::NodeFlapping,
        FailureClass::NodePressure,
        FailureClass::NodeBlackHole,
        FailureClass::SystemOOM,
    ] {
        let many: Vec<Finding> = (0..6).map(|i| finding(class, &format!("w{i}"))).collect();
        let found = causes(&many, &ten);
        assert_eq!(found.len(), 1, "{class}: {found:?}");
        assert!(many.iter().all(|f| found[0].covers(f)), "{class}");
        let few: Vec<Finding> = (0..2).map(|i| finding(class, &format!("w{i}"))).collect();
        assert!(
            causes(&few, &ten).is_empty(),
            "{class}: two nodes are node faults"
        );
    }
    // NotReady and unreachable nodes are one family: down.
    let down = [
        finding(FailureClass::NodeNotReady, "w0"),
        finding(FailureClass::NodeUnreachable, "w1"),
        finding(FailureClass::PLEGUnhealthy, "w2"),
    ];
    assert_eq!(causes(&down, &ten).len(), 1);
}

#[test]
fn a_zone_outage_is_held_in_its_zone_and_a_node_elsewhere_is_not() {
    // 9 nodes in zones a, b, c (w0, w3, w6 in a): a's three go down, and w1 in b.
    let nine = topology(9, &["a", "b", "c"]);
    let down: Vec<Finding> = ["w0", "w3", "w6", "w1"]
        .iter()
        .map(|n| finding(FailureClass::NodeUnreachable, n))
        .collect();
    let found = causes(&down, &nine);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].cause,
        CorrelatedCause::Nodes {
            family: NodeFamily::Down,
            domain: Some(Domain::zone("a"))
        }
    );
    assert!(
        found[0].message.contains("3 of 3 nodes in zone a"),
        "{}",
        found[0].message
    );
    assert!(found[0].covers(&down[0]));
    assert!(
        !found[0].covers(&down[3]),
        "the node in zone b is a node fault, healed"
    );

    // Spread over zones (two in a, two in b: 4 of 9), no zone explains it: the cluster's cause.
    let spread: Vec<Finding> = ["w0", "w3", "w1", "w4"]
        .iter()
        .map(|n| finding(FailureClass::NodeUnreachable, n))
        .collect();
    let found = causes(&spread, &nine);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].cause,
        CorrelatedCause::Nodes {
            family: NodeFamily::Down,
            domain: None
        }
    );
    assert!(spread.iter().all(|f| found[0].covers(f)));

    // One zone that is the whole cluster is the cluster.
    let one_zone = topology(6, &["a"]);
    let found = causes(&spread, &one_zone);
    assert_eq!(found.len(), 1);
    assert!(matches!(
        &found[0].cause,
        CorrelatedCause::Nodes { domain: None, .. }
    ));
}

/// The Ready transitions of a node while it was down with many others (and the cool-off after)
/// were the storm's: they do not count toward NodeFlapping. Those outside still do.
#[test]
fn transitions_while_held_by_nodes_down_together_are_not_flapping() {
    use kube_healer_core::classify_snapshot;
    const NOW: i64 = T + 10_000;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "w0", "uid": "w0"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}]}}))
    .unwrap();
    let mut view = node_view(&node, &mut Interner::default()).unwrap();
    // Down, up, down, up: two storms' worth of transitions within the hour.
    view.ready_transitions = vec![NOW - 900, NOW - 800, NOW - 500, NOW - 400].into();
    let flapping = |held: Vec<(i64, i64)>| {
        let mut snapshot = kube_healer_core::Snapshot::new(vec![], vec![view.clone()], vec![], vec![]);
        snapshot.held_together.insert("w0".into(), held);
        classify_snapshot(&snapshot, NOW)
            .findings
            .iter()
            .any(|f| f.class == FailureClass::NodeFlapping)
    };
    assert!(flapping(vec![]), "four transitions in the hour");
    // The first storm held it from before its first transition through its cool-off, the second
    // is still holding: no transition is the node's own.
    assert!(!flapping(vec![(NOW - 910, NOW - 700), (NOW - 510, i64::MAX)]));
    // Only the second storm: the first two transitions are its own, not three.
    assert!(!flapping(vec![(NOW - 510, i64::MAX)]));
    // A storm that held it before any of these: all four count.
    assert!(flapping(vec![(NOW - 3000, NOW - 2000)]));
}

/// A Ready transition is dated by its lastTransitionTime, unless that goes back before the
/// transition seen last (kwok reports a fixed time on recovery): then by when it was seen, so
/// that it falls in the storm it belongs to.
#[test]
fn a_transition_dated_before_the_one_it_follows_is_dated_when_seen() {
    use kube_healer_core::carry::carry_node;
    let mut interner = Interner::default();
    let mut view = |status: &str, since: i64| {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "w0", "uid": "w0"},
            "status": {"conditions": [{"type": "Ready", "status": status,
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::from_second(since).unwrap().to_string()}]}}))
        .unwrap();
        node_view(&node, &mut interner).unwrap()
    };
    let ready = view("True", T - 600);
    let mut down = view("Unknown", T + 100);
    assert!(carry_node(&mut down, Some(&ready), T + 101));
    assert_eq!(&*down.ready_transitions, [T + 100]);
    // Back, reported as Ready since T - 600 (before it went down): dated when seen.
    let mut up = view("True", T - 600);
    assert!(carry_node(&mut up, Some(&down), T + 150));
    assert_eq!(&*up.ready_transitions, [T + 100, T + 150]);
}

/// A bad image rolled out to one node pool fails its nodes across zones: with the pool label
/// configured that is the pool's cause, held, while a node failing alone in another pool is
/// healed. Without the label no zone explains them, and the cluster's cause holds them all.
#[test]
fn a_pool_failing_across_zones_is_held_in_its_pool() {
    // 12 nodes, zones a/b/c round robin, pools by pairs: gpu = w0, w1, w6, w7 (two in a, two in
    // b); cpu = w2..w5,
    // w8..w11.
    let views = nodes(12, &["a", "b", "c"], &["gpu", "cpu", "cpu"]);
    let by_pool = Topology::by(&views, Some(POOL_LABEL));
    let failing: Vec<Finding> = ["w0", "w1", "w6", "w7", "w5"]
        .iter()
        .map(|n| condition("KernelDeadlock", n))
        .collect();
    let found = causes(&failing, &by_pool);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].cause,
        CorrelatedCause::Nodes {
            family: NodeFamily::Condition("KernelDeadlock".into()),
            domain: Some(Domain {
                label: POOL_LABEL.into(),
                value: "gpu".into()
            })
        }
    );
    assert!(
        found[0]
            .message
            .contains("4 of 4 nodes in pool gpu (karpenter.sh/nodepool)"),
        "{}",
        found[0].message
    );
    assert!(failing[..4].iter().all(|f| found[0].covers(f)));
    assert!(!found[0].covers(&failing[4]), "w5 (pool cpu) is a node fault");

    // Zones first: by zone alone the 5 (2 in a, 2 in b, 1 in c, of 4 each) explain no zone,
    // and 5 of 12 (41%) is the cluster's cause, which holds w5 too.
    let by_zone = Topology::of(&views);
    let found = causes(&failing, &by_zone);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(matches!(
        &found[0].cause,
        CorrelatedCause::Nodes { domain: None, .. }
    ));
    assert!(found[0].covers(&failing[4]));
}

/// A cause of one condition type holds that type's findings on its members, not another type's:
/// a member that also turns ReadonlyFilesystem has a second failure, judged on its own.
#[test]
fn a_condition_cause_does_not_hold_another_condition_on_its_members() {
    let nine = topology(9, &[]);
    let deadlock: Vec<Finding> = ["w0", "w1", "w2", "w3"]
        .iter()
        .map(|n| condition("KernelDeadlock", n))
        .collect();
    let found = causes(&deadlock, &nine);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].covers(&deadlock[0]));
    assert!(
        !found[0].covers(&condition("ReadonlyFilesystem", "w0")),
        "another condition type on a member is not the cause's"
    );
}

/// A pool is judged on all its failing nodes, even those a zone already holds: its cause holds
/// the rest. 10 nodes: zone a is w0-w2, all of pool p; w3 and w4 (zone b) are pool p too. All
/// five down: zone a's cause holds w0-w2, pool p's (5 of 5) holds w3 and w4.
#[test]
fn a_pool_half_held_by_a_zone_still_holds_its_other_nodes() {
    let mut interner = Interner::default();
    let views: Vec<_> = (0..10)
        .map(|i| {
            let zone = if i < 3 { "a" } else { "b" };
            let pool = if i < 5 { "p" } else { "q" };
            let node: Node = serde_json::from_value(
                json!({"metadata": {"name": format!("w{i}"), "uid": format!("w{i}"),
                "labels": {ZONE_LABEL: zone, POOL_LABEL: pool}}}),
            )
            .unwrap();
            node_view(&node, &mut interner).unwrap()
        })
        .collect();
    let topology = Topology::by(&views, Some(POOL_LABEL));
    let down: Vec<Finding> = (0..5)
        .map(|i| finding(FailureClass::NodeNotReady, &format!("w{i}")))
        .collect();
    let found = causes(&down, &topology);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].message.contains("3 of 3 nodes in zone a"),
        "{}",
        found[0].message
    );
    assert!(
        found[1].message.contains("5 of 5 nodes in pool p"),
        "{}",
        found[1].message
    );
    assert!(down.iter().all(|f| found.iter().any(|c| c.covers(f))));
}
