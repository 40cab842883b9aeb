//! Batches left unfinished: a new leader resumes those of its own policies only. Operators that
//! share a cluster (each with its --policy-selector) see every HealingAction; one finishing
//! another's batch would race it (and did, on the shared e2e cluster).

use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;

fn batch_record(policy: &str, name: &str) -> Change {
    let mut labels = json!({
        kube_healer_api::batch::BATCH_LABEL: "2",
        kube_healer_api::IN_FLIGHT_LABEL: (T0 + 30).to_string(),
        kube_healer_api::DECISION_LABEL: "act",
        kube_healer_api::STEP_LABEL: "1",
    });
    labels[kube_healer_api::POLICY_LABEL] = json!(policy);
    let meta: kube::core::PartialObjectMeta<kube_healer_api::HealingAction> = serde_json::from_value(
        json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
            "metadata": {"name": name, "creationTimestamp": at(T0), "labels": labels}}),
    )
    .unwrap();
    Change::Record(Box::new(Event::InitApply(meta)))
}

#[test]
fn a_new_leader_resumes_only_its_own_policies_batches() {
    let (mut e, _clock, mut work) = acting();
    e.apply(Change::Pod(Box::new(Event::Init)));
    e.apply(Change::Pod(Box::new(Event::InitDone)));
    e.apply(Change::Node(Box::new(Event::Init)));
    e.apply(Change::Node(Box::new(Event::InitDone)));
    e.apply(Change::Event(Box::new(Event::Init)));
    e.apply(Change::Event(Box::new(Event::InitDone)));
    e.apply(Change::Lease(Box::new(Event::Init)));
    e.apply(Change::Lease(Box::new(Event::InitDone)));
    e.apply(Change::Namespace(Box::new(Event::Init)));
    e.apply(Change::Namespace(Box::new(Event::InitDone)));
    e.apply(Change::policy(Event::Init));
    if let Change::Policy(p) = leftovers_policy(json!({}))
        && let Event::Apply(p) = *p
    {
        e.apply(Change::Policy(Box::new(Event::InitApply(p))));
    }
    e.apply(Change::policy(Event::InitDone));
    e.apply(Change::Record(Box::new(Event::Init)));
    e.apply(batch_record("leftovers", "leftovers-b1"));
    e.apply(batch_record("someone-elses", "someone-elses-b2"));
    e.apply(Change::Record(Box::new(Event::InitDone)));
    let mut resumed = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::ResumeBatch { name, until } = w {
            resumed.push((name, until));
        }
    }
    assert_eq!(resumed, [("leftovers-b1".to_string(), T0 + 30)]);
}
