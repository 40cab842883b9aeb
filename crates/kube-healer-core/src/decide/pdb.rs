//! PodDisruptionBudgets for what replaces pods without the Eviction API. Delete goes through the
//! Eviction API (the API server applies the budgets, atomically); a rollout restart does not:
//! the workload's controller rolls its pods in its own way and asks no budget, and it replaces
//! the healthy pods too. So RestartOwner asks each budget over the workload's pods what the
//! Eviction API asks for a healthy pod: the budget must have been observed by its controller,
//! and must allow a disruption now.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::convert::Interner;
use crate::policy::Selector;

/// Why a rollout restart of a workload whose pods carry `labels` would break one of `budgets`
/// (None: none would break). Names the budget, as the Eviction API's refusal does.
pub fn restart_refused_by(
    budgets: &[PodDisruptionBudget],
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let labels = Interner::default().labels(Some(labels));
    budgets.iter().find_map(|pdb| {
        let name = pdb.metadata.name.as_deref().unwrap_or_default();
        let spec = pdb.spec.as_ref()?;
        // policy/v1: no selector selects no pod, an empty one every pod of the namespace.
        let selector = Selector::compile(spec.selector.as_ref()?, "selector").ok()?;
        if !selector.matches(&labels) {
            return None;
        }
        let Some(status) = pdb.status.as_ref() else {
            return Some(format!("the PodDisruptionBudget {name} is still being processed by the server"));
        };
        if status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0) {
            return Some(format!("the PodDisruptionBudget {name} is still being processed by the server"));
        }
        (status.disruptions_allowed.unwrap_or(0) <= 0).then(|| {
            format!(
                "the PodDisruptionBudget {name} allows no disruption now: it needs {} healthy pods and has {} (a rollout restart replaces healthy pods too)",
                status.desired_healthy.unwrap_or(0),
                status.current_healthy.unwrap_or(0)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(selector: serde_json::Value, allowed: i32, observed: i64) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"minAvailable": 2, "selector": selector},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2,
                "expectedPods": 2, "observedGeneration": observed}}))
        .unwrap()
    }

    #[test]
    fn a_restart_keeps_each_budget_over_its_pods_as_an_eviction_of_a_healthy_pod_would() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let at_limit = pdb(json!({"matchLabels": {"app": "web"}}), 0, 2);
        let refused = restart_refused_by(std::slice::from_ref(&at_limit), &labels).unwrap();
        assert!(
            refused.contains("PodDisruptionBudget web allows no disruption"),
            "{refused}"
        );
        let room = pdb(json!({"matchLabels": {"app": "web"}}), 1, 2);
        assert_eq!(restart_refused_by(&[room], &labels), None);
        let unseen = pdb(json!({"matchLabels": {"app": "web"}}), 1, 1);
        assert!(
            restart_refused_by(&[unseen], &labels)
                .unwrap()
                .contains("still being processed")
        );
        // Another workload's budget, and one with no selector, select none of its pods; an
        // empty selector selects every pod of the namespace.
        let other = pdb(json!({"matchLabels": {"app": "db"}}), 0, 2);
        assert_eq!(restart_refused_by(&[other], &labels), None);
        let mut none: PodDisruptionBudget = pdb(json!({}), 0, 2);
        none.spec.as_mut().unwrap().selector = None;
        assert_eq!(restart_refused_by(&[none], &labels), None);
        let all = pdb(json!({}), 0, 2);
        assert!(restart_refused_by(&[all], &labels).is_some());
    }
}
