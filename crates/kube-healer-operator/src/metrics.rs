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
pub struct IndexLabel {
    pub index: String,
}

/// The operator's in-memory indexes, as `index_entries` names them.
pub const INDEXES: [&str; 10] = [
    "interned",
    "gone_nodes",
    "timers",
    "policy_matches",
    "records",
    "releasing",
    "retired_policies",
    "ladders",
    "held_decisions",
    "rate_actions",
];

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

/// Declares the metrics: each field with its doc, its type, its initial value, and the name and
/// help it is exported with, registered once by `Metrics::default`.
macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty = $init:expr, $name:literal, $help:literal;)*) => {
        /// Every metric the operator exports, registered once.
        pub struct Metrics {
            pub registry: Registry,
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl Metrics {
    /// Series a dashboard or an alert reads are there from the start, at 0: a family with no
    /// series is not exported at all, and a missing series is no "0 refused".
    fn zeroed(&self) {
        for &class in kube_healer_api::FailureClass::ALL {
            let class = Metrics::class(class);
            self.findings.get_or_create(&class).set(0);
            self.findings_due.get_or_create(&class).inc_by(0);
            self.policy_due.get_or_create(&class).inc_by(0);
        }
        for resource in ["pods", "nodes", "events"] {
            self.store_objects.get_or_create(&Metrics::resource(resource)).set(0);
        }
        for index in INDEXES {
            self.index_entries.get_or_create(&Metrics::index(index)).set(0);
        }
        let maintainers = kube_healer_core::decide::Maintainer::ALL.map(|m| m.resource());
        for resource in WATCHED.into_iter().chain(maintainers) {
            self.watch_events.get_or_create(&Metrics::resource(resource)).inc_by(0);
            self.watch_errors.get_or_create(&Metrics::resource(resource)).inc_by(0);
        }
        for reason in ["namespace", "source"] {
            self.events_ignored.get_or_create(&Metrics::reason(reason)).inc_by(0);
        }
        for by in kube_healer_core::decide::OutBy::ALL {
            self.nodes_out_of_service.get_or_create(&Metrics::reason(by.as_str())).set(0);
        }
        for reason in [HoldReason::BudgetExceeded, HoldReason::Correlated] {
            self.held_targets.get_or_create(&Metrics::reason(reason.as_str())).set(0);
        }
        for state in ["active", "refused"] {
            self.policies.get_or_create(&Metrics::state(state)).set(0);
        }
    }
            /// Each metric made and registered (the registry keeps a clone: they share values).
            fn registered(mut registry: Registry) -> Self {
                $(
                    let $field: $ty = $init;
                    registry.register($name, $help, $field.clone());
                )*
                Metrics { registry, $($field,)* }
            }
        }
    };
}

metrics! {
    /// Findings present right now, by class (due or not).
    findings: Family<ClassLabel, Gauge> = Family::default(),
        "findings",
        "Findings present right now, by failure class";
    /// Findings that reached their threshold, by class.
    findings_due: Family<ClassLabel, Counter> = Family::default(),
        "findings_due",
        "Findings that reached their threshold, by failure class";
    /// Policy conditions that reached their `for`, by failure class.
    policy_due: Family<ClassLabel, Counter> = Family::default(),
        "policy_conditions_due",
        "Policy conditions that held for their duration, by failure class";
    /// Decisions recorded, by action, final phase and reason.
    actions: Family<ActionLabels, Counter> = Family::default(),
        "actions",
        "Decisions recorded, by action, phase and reason";
    /// Seconds from a decision to its API call.
    decision_latency: Histogram = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        "decision_to_action_seconds",
        "Seconds from a decision to its API call";
    /// Seconds from the moment a failure became due (its `for` elapsed) to the first step's API
    /// call: the reaction time.
    due_latency: Histogram = Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        "due_to_action_seconds",
        "Seconds from a failure becoming due (its `for` elapsed) to the first action's API call";
    /// 1 while this replica leads (decides and acts), else 0.
    leader: Gauge = Gauge::default(),
        "leader",
        "1 while this replica is the leader";
    /// 1 while every watch has listed its current state, else 0 (during the start-up lists and
    /// any relist): decisions are made only while it is 1.
    synced: Gauge = Gauge::default(),
        "stores_synced",
        "1 while every watch has listed its current state (decisions wait otherwise)";
    /// Correlated causes in force (a registry failing, many nodes down together).
    correlated: Gauge = Gauge::default(),
        "correlated_findings",
        "Correlated causes in force; per-target actions they cover are held";
    /// Objects held in the compact stores, by resource.
    store_objects: Family<ResourceLabel, Gauge> = Family::default(),
        "store_objects",
        "Objects held in the compact stores";
    /// Watch events received, by resource.
    watch_events: Family<ResourceLabel, Counter> = Family::default(),
        "watch_events",
        "Watch events received";
    /// Watch errors (each followed by a backoff and a resumed watch), by resource.
    watch_errors: Family<ResourceLabel, Counter> = Family::default(),
        "watch_errors",
        "Watch errors, each followed by a backoff";
    /// Events about nodes not taken as evidence, by why: written outside the trusted
    /// namespaces, or by no trusted source.
    events_ignored: Family<ReasonLabel, Counter> = Family::default(),
        "events_ignored",
        "Events about nodes not taken as evidence (untrusted namespace or source)";
    /// Targets whose latest decision on some policy is held, by the hold's reason (a correlated
    /// cause, the cluster's disruption budget, a policy's rate ...), until they are acted on,
    /// recover or go.
    held_targets: Family<ReasonLabel, Gauge> = Family::default(),
        "held_targets",
        "Targets whose latest decision is held, by the hold's reason";
    /// Nodes out of service, as the cluster's disruption budget counts them, by why (the first
    /// that applies): kube-healer (one of its policies holds the node), maintenance (a person's
    /// cordon, a tool's signal), not-ready.
    nodes_out_of_service: Family<ReasonLabel, Gauge> = Family::default(),
        "nodes_out_of_service",
        "Nodes out of service as the disruption budget counts them, by why: kube-healer, maintenance, not-ready";
    /// Decisions that could not be recorded (the record's create failed): none is carried out
    /// unrecorded; each is decided again later.
    records_unwritten: Counter = Counter::default(),
        "records_unwritten",
        "Decisions not carried out because their record could not be written";
    /// HealingPolicies by state: active, or refused (invalid, unreadable).
    policies: Family<StateLabel, Gauge> = Family::default(),
        "policies",
        "HealingPolicies by state (active, refused)";
    /// Entries in each of the operator's in-memory indexes, by index: every one is bounded (by
    /// the objects watched, by time, or by a constant; README: "Memory").
    index_entries: Family<IndexLabel, Gauge> = Family::default(),
        "index_entries",
        "Entries in each in-memory index of the operator, by index (each bounded: by the objects watched, by time, or by a constant)";
    /// The event index's memory, estimated (its budget is --event-memory-mib).
    event_index_bytes: Gauge = Gauge::default(),
        "event_index_bytes",
        "Bytes the event index holds, estimated (its budget is --event-memory-mib)";
    /// Event series evicted by the event index's memory budget, the least recently seen first.
    events_evicted: Counter = Counter::default(),
        "events_evicted",
        "Event series evicted by the event index's memory budget, least recently seen first";
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics::registered(Registry::with_prefix("kube_healer"));
        metrics.zeroed();
        metrics
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

    pub fn index(index: &str) -> IndexLabel {
        IndexLabel {
            index: index.to_string(),
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
