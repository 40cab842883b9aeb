//! Batches left unfinished: a new leader resumes those of its own policies only. Operators that
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

#[test]
fn a_new_leader_resumes_only_its_own_policies_batches() {
    let (mut e, _clock, mut work) = acting();
    let records = vec![
        batch_record("leftovers", "leftovers-b1"),
        batch_record("someone-elses", "someone-elses-b2"),
    ];
    listed_with(&mut e, vec![leftovers_policy(json!({}))], records);
    let mut resumed = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::ResumeBatch { name, until } = w {
            resumed.push((name, until));
        }
    }
    assert_eq!(resumed, [("leftovers-b1".to_string(), T0 + 30)]);
}
