//! Prometheus metrics of the operator.

use kube_healer_api::reasons::HoldReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
    pub phase: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: String,
}

/// The resources the operator watches, as its metrics name them.
pub const WATCHED: [&str; 7] = [
    "pods",
    "nodes",
    "events",
    "leases",
    "namespaces",
    "healingpolicies",
    "healingactions",
];

/// Every metric the operator exports, registered once.
pub struct Metrics {
    pub registry: Registry,
    /// Findings present right now, by class (due or not).
    pub findings: Family<ClassLabel, Gauge>,
    /// Findings that reached their threshold, by class.
    pub findings_due: Family<ClassLabel, Counter>,
    /// Policy conditions that reached their `for`, by failure class.
    pub policy_due: Family<ClassLabel, Counter>,
    /// Decisions recorded, by action, final phase and reason.
    pub actions: Family<ActionLabels, Counter>,
    /// Seconds from a decision to its API call.
    pub decision_latency: Histogram,
    /// Seconds from the moment a failure became due (its `for` elapsed) to the first step's API
    /// call: the reaction time.
    pub due_latency: Histogram,
    /// 1 while this replica leads (decides and acts), else 0.
    pub leader: Gauge,
    /// 1 while every watch has listed its current state, else 0 (during the start-up lists and
    /// any relist): decisions are made only while it is 1.
    pub synced: Gauge,
    /// Correlated causes in force (a registry failing, many nodes down together).
    pub correlated: Gauge,
    /// Objects held in the compact stores, by resource.
    pub store_objects: Family<ResourceLabel, Gauge>,
    /// Watch events received, by resource.
    pub watch_events: Family<ResourceLabel, Counter>,
    /// Watch errors (each followed by a backoff and a resumed watch), by resource.
    pub watch_errors: Family<ResourceLabel, Counter>,
    /// Events about nodes not taken as evidence, by why: written outside the trusted
    /// namespaces, or by no trusted source.
    pub events_ignored: Family<ReasonLabel, Counter>,
    /// Targets whose latest decision on some policy is held, by the hold's reason (a correlated
    /// cause, the cluster's disruption budget, a policy's rate ...), until they are acted on,
    /// recover or go.
    pub held_targets: Family<ReasonLabel, Gauge>,
    /// Decisions that could not be recorded (the record's create failed): none is carried out
    /// unrecorded; each is decided again later.
    pub records_unwritten: Counter,
    /// HealingPolicies by state: active, or refused (invalid, unreadable).
    pub policies: Family<StateLabel, Gauge>,
    /// The event index's memory, estimated (its budget is --event-memory-mib).
    pub event_index_bytes: Gauge,
    /// Event series evicted by the event index's memory budget, the least recently seen first.
    pub events_evicted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kube_healer");
        let findings = Family::<ClassLabel, Gauge>::default();
        let findings_due = Family::<ClassLabel, Counter>::default();
        let policy_due = Family::<ClassLabel, Counter>::default();
        let store_objects = Family::<ResourceLabel, Gauge>::default();
        let watch_events = Family::<ResourceLabel, Counter>::default();
        let watch_errors = Family::<ResourceLabel, Counter>::default();
        registry.register(
            "findings",
            "Findings present right now, by failure class",
            findings.clone(),
        );
        registry.register(
            "findings_due",
            "Findings that reached their threshold, by failure class",
            findings_due.clone(),
        );
        registry.register(
            "store_objects",
            "Objects held in the compact stores",
            store_objects.clone(),
        );
        registry.register("watch_events", "Watch events received", watch_events.clone());
        registry.register(
            "watch_errors",
            "Watch errors, each followed by a backoff",
            watch_errors.clone(),
        );
        let events_ignored = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "events_ignored",
            "Events about nodes not taken as evidence (untrusted namespace or source)",
            events_ignored.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Decisions recorded, by action, phase and reason",
            actions.clone(),
        );
        let decision_latency = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        registry.register(
            "decision_to_action_seconds",
            "Seconds from a decision to its API call",
            decision_latency.clone(),
        );
        let due_latency =
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        registry.register(
            "due_to_action_seconds",
            "Seconds from a failure becoming due (its `for` elapsed) to the first action's API call",
            due_latency.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica is the leader", leader.clone());
        let synced = Gauge::default();
        registry.register(
            "stores_synced",
            "1 while every watch has listed its current state (decisions wait otherwise)",
            synced.clone(),
        );
        let correlated = Gauge::default();
        registry.register(
            "correlated_findings",
            "Correlated causes in force; per-target actions they cover are held",
            correlated.clone(),
        );
        registry.register(
            "policy_conditions_due",
            "Policy conditions that held for their duration, by failure class",
            policy_due.clone(),
        );
        let held_targets = Family::<ReasonLabel, Gauge>::default();
        registry.register(
            "held_targets",
            "Targets whose latest decision is held, by the hold's reason",
            held_targets.clone(),
        );
        let records_unwritten = Counter::default();
        registry.register(
            "records_unwritten",
            "Decisions not carried out because their record could not be written",
            records_unwritten.clone(),
        );
        let policies = Family::<StateLabel, Gauge>::default();
        registry.register(
            "policies",
            "HealingPolicies by state (active, refused)",
            policies.clone(),
        );
        let event_index_bytes = Gauge::default();
        registry.register(
            "event_index_bytes",
            "Bytes the event index holds, estimated (its budget is --event-memory-mib)",
            event_index_bytes.clone(),
        );
        let events_evicted = Counter::default();
        registry.register(
            "events_evicted",
            "Event series evicted by the event index's memory budget, least recently seen first",
            events_evicted.clone(),
        );
        // Series a dashboard or an alert reads are there from the start, at 0: a family with
        // no series is not exported at all, and a missing series is no "0 refused".
        for &class in kube_healer_api::FailureClass::ALL {
            let class = Metrics::class(class);
            findings.get_or_create(&class).set(0);
            findings_due.get_or_create(&class).inc_by(0);
            policy_due.get_or_create(&class).inc_by(0);
        }
        for resource in ["pods", "nodes", "events"] {
            store_objects.get_or_create(&Metrics::resource(resource)).set(0);
        }
        for resource in WATCHED {
            watch_events.get_or_create(&Metrics::resource(resource)).inc_by(0);
            watch_errors.get_or_create(&Metrics::resource(resource)).inc_by(0);
        }
        for reason in ["namespace", "source"] {
            events_ignored.get_or_create(&Metrics::reason(reason)).inc_by(0);
        }
        for reason in [HoldReason::BudgetExceeded, HoldReason::Correlated] {
            held_targets
                .get_or_create(&Metrics::reason(reason.as_str()))
                .set(0);
        }
        for state in ["active", "refused"] {
            policies.get_or_create(&Metrics::state(state)).set(0);
        }
        Metrics {
            registry,
            findings,
            findings_due,
            policy_due,
            actions,
            decision_latency,
            due_latency,
            leader,
            synced,
            correlated,
            store_objects,
            watch_events,
            watch_errors,
            events_ignored,
            held_targets,
            records_unwritten,
            policies,
            event_index_bytes,
            events_evicted,
        }
    }
}

impl Metrics {
    pub fn class(class: kube_healer_api::FailureClass) -> ClassLabel {
        ClassLabel {
            class: class.as_str().to_string(),
        }
    }

    pub fn action(
        action: kube_healer_api::ActionKind,
        phase: kube_healer_api::ActionPhase,
        reason: &str,
    ) -> ActionLabels {
        ActionLabels {
            action: action.as_str().into(),
            phase: format!("{phase:?}"),
            reason: reason.into(),
        }
    }

    pub fn reason(reason: &str) -> ReasonLabel {
        ReasonLabel {
            reason: reason.to_string(),
        }
    }

    pub fn state(state: &str) -> StateLabel {
        StateLabel {
            state: state.to_string(),
        }
    }

    pub fn resource(resource: &str) -> ResourceLabel {
        ResourceLabel {
            resource: resource.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family is exported from the start (a family without series is not exported at
    /// all), except the decisions by action, phase and reason, which the first one makes.
    #[test]
    fn every_family_is_exported_from_the_start() {
        let metrics = Metrics::default();
        let text = metrics.encode();
        let exported = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let registered = format!("{:?}", metrics.registry).matches("name: \"").count();
        assert!(registered >= 16, "{registered}");
        assert_eq!(exported, registered - 1, "{text}");
        assert!(!text.contains("# TYPE kube_healer_actions counter"));
        for resource in WATCHED {
            assert!(text.contains(&format!(
                "kube_healer_watch_errors_total{{resource=\"{resource}\"}} 0"
            )));
        }
    }
}
