//! What a process that ended left unfinished (batches, live records without an outcome): a new
//! leader takes up those of its own policies only, never its own actions in flight. Operators that
//! share a cluster (each with its --policy-selector) see every HealingAction; one finishing
//! another's batch would race it (and did, on the shared e2e cluster).

use serde_json::json;

use super::*;

fn batch_record(policy: &str, name: &str) -> Change {
    let labels = json!({
        kube_healer_api::batch::BATCH_LABEL: "2",
        kube_healer_api::IN_FLIGHT_LABEL: (T0 + 30).to_string(),
        kube_healer_api::DECISION_LABEL: "act",
        kube_healer_api::STEP_LABEL: "1",
    });
    record_of(policy, name, T0, labels)
}

/// Batches resumed (name, until) and settled (name, reason).
type Handed = (Vec<(String, Secs)>, Vec<(String, &'static str)>);

/// The batches handed on.
fn batches(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Handed {
    let (mut resumed, mut settled) = (Vec::new(), Vec::new());
    while let Ok(w) = work.try_recv() {
        match w {
            Work::ResumeBatch { name, until } => resumed.push((name, until)),
            Work::SettleBatch { name, reason, .. } => settled.push((name, reason)),
            _ => {}
        }
    }
    (resumed, settled)
}

/// Only once its deadline has passed (its process could be at it until then), and only its
/// own policies' batches.
#[test]
fn a_new_leader_resumes_only_its_own_policies_batches() {
    let (mut e, clock, mut work) = acting();
    let records = vec![
        batch_record("leftovers", "leftovers-b1"),
        batch_record("someone-elses", "someone-elses-b2"),
    ];
    listed_with(&mut e, vec![leftovers_policy(json!({}))], records);
    assert_eq!(batches(&mut work), (vec![], vec![]), "not before its deadline");
    clock.set(T0 + 30);
    e.fire_due_timers();
    assert_eq!(
        batches(&mut work),
        (vec![("leftovers-b1".to_string(), T0 + 30)], vec![])
    );
}

/// Work resumed passes the gate again: a batch whose policy is suspended when its deadline
/// passes is settled as not done, never carried on.
#[test]
fn a_batch_of_a_policy_suspended_since_is_settled_not_carried_on() {
    let (mut e, clock, mut work) = acting();
    let records = vec![batch_record("leftovers", "leftovers-b1")];
    listed_with(&mut e, vec![leftovers_policy(json!({"suspend": true}))], records);
    clock.set(T0 + 31);
    e.fire_due_timers();
    assert_eq!(
        batches(&mut work),
        (
            vec![],
            vec![("leftovers-b1".to_string(), kube_healer_api::reasons::SUSPENDED)]
        )
    );
}

/// A record of a live decision on the pod `uid`; `written` says whether its status was ever
/// written (the status subresource among its managed fields, as the API server keeps them).
fn live_record(policy: &str, name: &str, uid: &str, decision: &str, written: bool) -> Change {
    let mut managed = vec![json!({"manager": "kube-healer", "operation": "Update",
        "apiVersion": "healing.kubehealer.io/v1alpha1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {}}})];
    if written {
        managed.push(json!({"manager": "kube-healer", "operation": "Update",
            "apiVersion": "healing.kubehealer.io/v1alpha1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {}}, "subresource": "status"}));
    }
    let meta: kube::core::PartialObjectMeta<kube_healer_api::HealingAction> = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
        "metadata": {"name": name, "creationTimestamp": at(T0 - 60), "managedFields": managed,
            "labels": {kube_healer_api::POLICY_LABEL: policy, kube_healer_api::TARGET_UID_LABEL: uid,
                kube_healer_api::DECISION_LABEL: decision, kube_healer_api::STEP_LABEL: "1"}}}))
    .unwrap();
    Change::Record(Box::new(Event::Apply(meta)))
}

/// The records the engine handed its executor to finish if their target is gone.
fn finishing(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<String> {
    let mut names = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::FinishUnfinished { name } = w {
            names.push(name);
        }
    }
    names.sort();
    names
}

#[test]
fn a_new_leader_finishes_only_its_own_policies_live_records_without_an_outcome() {
    let (mut e, _clock, mut work) = acting();
    let records = vec![
        live_record("leftovers", "leftovers-unfinished", "p1", "act", false),
        live_record("leftovers", "leftovers-finished", "p2", "act", true),
        live_record("leftovers", "leftovers-dry-run", "p3", "dry-run", false),
        live_record("someone-elses", "someone-elses-unfinished", "p4", "act", false),
    ];
    listed_with(&mut e, vec![leftovers_policy(json!({}))], records);
    assert_eq!(finishing(&mut work), ["leftovers-unfinished"]);

    // Its outcome written (seen on the watch): no longer handed over on the next re-list.
    e.apply(live_record(
        "leftovers",
        "leftovers-unfinished",
        "p1",
        "act",
        true,
    ));
    e.apply(Change::Pod(Box::new(Event::Init)));
    e.apply(Change::Pod(Box::new(Event::InitDone)));
    assert_eq!(finishing(&mut work), Vec::<String>::new());
}

#[test]
fn this_replicas_own_action_in_flight_is_not_finished_from_outside() {
    let (mut e, _clock, mut work) = acting();
    listed_with(&mut e, vec![leftovers_policy(json!({}))], Vec::new());
    e.apply(evicted("a"));
    let sent = requests(&mut work);
    assert_eq!(sent.len(), 1, "one decision on the Evicted pod");
    let name = sent[0].name.clone();
    // Its record, as the watch shows it before the outcome is written, and a re-list meanwhile.
    e.apply(live_record("leftovers", &name, "a", "act", false));
    e.apply(Change::Pod(Box::new(Event::Init)));
    e.apply(evicted("a"));
    e.apply(Change::Pod(Box::new(Event::InitDone)));
    assert_eq!(finishing(&mut work), Vec::<String>::new());
}
