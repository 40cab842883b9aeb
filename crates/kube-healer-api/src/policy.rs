//! HealingPolicy: which failures to heal, how, and within which limits.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Rule;
use kube::core::cel::Message;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, HealingStep};
use crate::class::{FailureClass, Knob, TargetKind};
use crate::duration::Duration;

/// What to heal, when, how, and within which limits.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "healing.kubehealer.io",
    version = "v1alpha1",
    kind = "HealingPolicy",
    shortname = "hp",
    status = "HealingPolicyStatus",
    doc = "HealingPolicy declares which failure classes kube-healer heals on pods or nodes, the escalation ladder of actions, and the safety limits.",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.kind","description":"Pod or Node"}"#,
    printcolumn = r#"{"name":"Dry-Run","type":"boolean","jsonPath":".spec.safety.dryRun"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.safety.suspend"}"#,
    printcolumn = r#"{"name":"Actions","type":"integer","jsonPath":".status.actionsTaken","description":"Actions taken (not dry-run, not skipped)"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kind_rule(TargetKind::Pod, "conditions", "class", "classes", &class_names))]
#[x_kube(validation = kind_rule(TargetKind::Node, "conditions", "class", "classes", &class_names))]
#[x_kube(validation = kind_rule(TargetKind::Pod, "actions", "action", "actions", &action_names))]
#[x_kube(validation = kind_rule(TargetKind::Node, "actions", "action", "actions", &action_names))]
#[x_kube(validation = Rule::new("self.target.kind == 'Node' || !has(self.safety) || !has(self.safety.maxUnhealthy)")
    .field_path(".safety.maxUnhealthy")
    .message("spec.safety.maxUnhealthy applies only to Node policies: remove it"))]
#[x_kube(validation = Rule::new("self.target.kind == 'Pod' || !has(self.safety) || !has(self.safety.maxDisruptedPerWorkload)")
    .field_path(".safety.maxDisruptedPerWorkload")
    .message("spec.safety.maxDisruptedPerWorkload applies only to Pod policies: remove it"))]
#[x_kube(validation = Rule::new("self.target.kind == 'Pod' || !has(self.safety) || !has(self.safety.podsAlike)")
    .field_path(".safety.podsAlike")
    .message("spec.safety.podsAlike applies only to Pod policies: remove it"))]
#[x_kube(validation = select_everything_rule())]
pub struct HealingPolicySpec {
    /// The objects this policy heals.
    pub target: PolicyTarget,
    /// Failures to act on: the policy acts when any one of them holds for its `for` duration.
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("spec.conditions must list at least one failure class, for example [{class: StuckTerminating, for: 5m}]"))]
    pub conditions: Vec<FailureCondition>,
    /// The escalation ladder: the first step acts when a condition has held for its `for`; each
    /// next step acts when the failure persists past the previous step's escalateAfter.
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("spec.actions must list at least one step, for example [{action: Event}]"))]
    pub actions: Vec<HealingStep>,
    /// Limits that hold actions back. Omitted fields take the documented defaults.
    #[serde(default)]
    pub safety: Safety,
}

fn class_names(kind: TargetKind) -> Vec<&'static str> {
    FailureClass::ALL
        .iter()
        .filter(|c| c.applies_to(kind))
        .map(|c| c.as_str())
        .collect()
}

fn action_names(kind: TargetKind) -> Vec<&'static str> {
    ActionKind::ALL
        .iter()
        .filter(|a| a.applies_to(kind))
        .map(|a| a.as_str())
        .collect()
}

/// Every element's `field` of spec.`list` must be allowed for `kind`. One rule per kind, so the
/// message can say which values that kind takes (the API server's cost budget rules out building
/// the message from the offending values).
fn kind_rule(
    kind: TargetKind,
    list: &str,
    field: &str,
    what: &str,
    allowed: &dyn Fn(TargetKind) -> Vec<&'static str>,
) -> Rule {
    let names = allowed(kind);
    let other = match kind {
        TargetKind::Pod => TargetKind::Node,
        TargetKind::Node => TargetKind::Pod,
    };
    let cel_list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Rule::new(format!("self.target.kind != '{kind}' || self.{list}.all(x, x.{field} in [{cel_list}])"))
        .field_path(format!(".{list}"))
        .message(
            format!(
                "spec.{list}: a {kind} policy takes only these {what}: {}; the others need spec.target.kind: {other}",
                names.join(", ")
            )
            .as_str(),
        )
}

/// A policy whose target selects every pod or node must be a dry run or carry explicit limits.
fn select_everything_rule() -> Rule {
    let narrowed = "(has(self.target.selector) && ((has(self.target.selector.matchLabels) && size(self.target.selector.matchLabels) > 0) \
        || (has(self.target.selector.matchExpressions) && size(self.target.selector.matchExpressions) > 0))) \
        || (has(self.target.namespaceSelector) && ((has(self.target.namespaceSelector.matchLabels) && size(self.target.namespaceSelector.matchLabels) > 0) \
        || (has(self.target.namespaceSelector.matchExpressions) && size(self.target.namespaceSelector.matchExpressions) > 0))) \
        || (has(self.target.namespaces) && has(self.target.namespaces.include) && size(self.target.namespaces.include) > 0)";
    let limited = "has(self.safety) && ((has(self.safety.dryRun) && self.safety.dryRun) \
        || (has(self.safety.maxConcurrent) && has(self.safety.rate) \
            && (self.target.kind == 'Pod' || has(self.safety.maxUnhealthy))))";
    Rule::new(format!("{narrowed} || {limited}")).field_path(".target").message(Message::Expression(
        "'spec.target selects every ' + self.target.kind + ' in the cluster: narrow it with a selector' \
         + (self.target.kind == 'Pod' ? ', namespaceSelector or namespaces.include' : '') \
         + ', or set spec.safety.dryRun: true, or set explicit limits spec.safety.maxConcurrent and spec.safety.rate' \
         + (self.target.kind == 'Node' ? ' and spec.safety.maxUnhealthy' : '')"
            .to_string(),
    ))
}

/// The objects a policy heals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'Pod' || (!has(self.namespaceSelector) && !has(self.namespaces) && !has(self.ownerKinds))")
    .message("namespaceSelector, namespaces and ownerKinds apply only to kind Pod: remove them from a Node policy"))]
pub struct PolicyTarget {
    /// Pod or Node.
    pub kind: TargetKind,
    /// Labels the target must carry. Omitted: every object of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Pods only: labels the pod's namespace must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods only: namespaces by name. kube-system and the operator's own namespace are protected
    /// unless named in include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NameFilter>,
    /// Pods only: the kind of the pod's controller (ReplicaSet, StatefulSet, DaemonSet, Job, Node
    /// for static pods, None for pods without a controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_kinds: Option<NameFilter>,
}

/// Names to include (empty: all) and to exclude (wins over include).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameFilter {
    /// Only these names (empty or omitted: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub include: Vec<String>,
    /// Never these names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub exclude: Vec<String>,
}

impl NameFilter {
    pub fn admits(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|n| n == name))
            && !self.exclude.iter().any(|n| n == name)
    }
}

/// A failure class with its duration and knobs. A knob set for a class it does not belong to is
/// refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = knob_rule(Knob::MinRestarts))]
#[x_kube(validation = knob_rule(Knob::Transitions))]
#[x_kube(validation = knob_rule(Knob::Window))]
#[x_kube(validation = knob_rule(Knob::Count))]
#[x_kube(validation = knob_rule(Knob::Reason))]
#[x_kube(validation = knob_rule(Knob::MessagePattern))]
#[x_kube(validation = knob_rule(Knob::ConditionType))]
#[x_kube(validation = knob_rule(Knob::ConditionStatus))]
#[x_kube(validation = knob_rule(Knob::MinPods))]
#[x_kube(validation = knob_rule(Knob::LeaseAge))]
#[x_kube(validation = knob_rule(Knob::MinFailures))]
#[x_kube(validation = Rule::new("self.class != 'EventPattern' || has(self.reason) || has(self.messagePattern)")
    .message("class EventPattern needs reason or messagePattern (or both), for example reason: FailedMount"))]
#[x_kube(validation = Rule::new("self.class != 'NodeCondition' || has(self.conditionType)")
    .message("class NodeCondition needs conditionType, for example KernelDeadlock"))]
#[x_kube(validation = Rule::new("self.class != 'NodePressure' || !has(self.conditionType) || self.conditionType in ['MemoryPressure', 'DiskPressure', 'PIDPressure']")
    .field_path(".conditionType")
    .message("for class NodePressure, conditionType must be MemoryPressure, DiskPressure or PIDPressure"))]
pub struct FailureCondition {
    /// The failure class (see the taxonomy in the README).
    pub class: FailureClass,
    /// How long the failure must hold before the first step acts. Default: the class's own
    /// threshold (for example 5m for ImagePullFailure, 1m past the deadline for StuckTerminating).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
    /// CrashLoop: restarts of one container at or above which it counts (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub min_restarts: Option<i32>,
    /// NodeFlapping: Ready transitions within `window` at or above which it counts (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1000))]
    pub transitions: Option<i32>,
    /// NodeFlapping, EventPattern, SystemOOM: the sliding window that counts (default 1h,
    /// 10m and 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// EventPattern, SystemOOM: events within `window` at or above which it counts (default 1
    /// and 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub count: Option<i32>,
    /// EventPattern: the event reason, exactly (for example FailedMount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub reason: Option<String>,
    /// EventPattern: a regular expression (RE2 syntax) the event message must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("''.matches(self) || !''.matches(self)")
        .message("must be a valid regular expression (RE2 syntax)"))]
    pub message_pattern: Option<String>,
    /// NodeCondition: the node condition type (for example KernelDeadlock, ReadonlyFilesystem).
    /// NodePressure: restrict to MemoryPressure, DiskPressure or PIDPressure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 316))]
    pub condition_type: Option<String>,
    /// NodeCondition: the status that signals the problem (default True).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<ConditionStatus>,
    /// NodeBlackHole: pods bound to the node that fail to start, at or above which it counts
    /// (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 10000))]
    pub min_pods: Option<i32>,
    /// HeartbeatLag: age of the node Lease's last renewal at or above which it counts (default
    /// 20s, half the node monitor grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_age: Option<Duration>,
    /// ProbeFailure: readiness probe failures the kubelet reported since the container started
    /// (its Unhealthy events, repeats counted), at or above which it counts (default 3, the
    /// kubelet's default failureThreshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub min_failures: Option<i32>,
}

/// A knob may only be set with a class that declares it.
fn knob_rule(knob: Knob) -> Rule {
    let classes = knob.classes();
    let names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
    let knob = knob.as_str();
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let which = match names.as_slice() {
        [one] => format!("class {one}"),
        many => format!("classes {}", many.join(", ")),
    };
    Rule::new(format!("!has(self.{knob}) || self.class in [{list}]"))
        .field_path(format!(".{knob}"))
        .message(format!("{knob} applies only to {which}: remove it or change the class").as_str())
}

impl FailureCondition {
    pub fn new(class: FailureClass) -> Self {
        FailureCondition {
            class,
            for_: None,
            min_restarts: None,
            transitions: None,
            window: None,
            count: None,
            reason: None,
            message_pattern: None,
            condition_type: None,
            condition_status: None,
            min_pods: None,
            lease_age: None,
            min_failures: None,
        }
    }
}

/// The status of a node condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// Limits that hold actions back. Every action held back is still recorded, as Skipped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Safety {
    /// Decide and record, but change nothing (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// Stop acting; findings are still evaluated (default false).
    #[serde(default)]
    pub suspend: bool,
    /// Actions of this policy in flight at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent: Option<i32>,
    /// At most this many actions per window (default 10 per 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Minimum time between two actions on the same target (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Duration>,
    /// Actions on one target for one failure, after which the policy gives up on it and records
    /// MaxAttempts (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<i32>,
    /// Node policies: when more nodes than this are unhealthy (a count, or a percent of the nodes
    /// the policy selects), node actions stop: a partition or a control-plane fault is not a node
    /// fault (default 30%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 4))]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')")
        .message("must be a count (0 or more) or a percent from 0% to 100%, such as 3 or 30%"))]
    pub max_unhealthy: Option<IntOrString>,
    /// Pod policies: how many of one workload's pods (a Deployment's, StatefulSet's,
    /// DaemonSet's, Job's...) kube-healer may be replacing at once, a count (1 or more) or a
    /// percent of the workload's pods (default 25%; either way at least one pod). A pod Delete,
    /// Evict or Reschedule removed counts until its workload has a pod created since that is
    /// Ready, or shows its own failure (restarted, waiting on an error); for 10 minutes at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 4))]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')")
        .message("must be a count (1 or more) or a percent from 1% to 100%, such as 2 or 25%"))]
    pub max_disrupted_per_workload: Option<IntOrString>,
    /// Pod policies: when pods failing alike (one failure told the same way) are one shared
    /// cause, and this policy's actions on them are held instead of healing pod by pod: at least
    /// minPods pods of at least minWorkloads workloads beginning to fail within a window.
    /// Omitted: the operator's `--pods-alike-min-pods` (5), `--pods-alike-min-workloads` (3) and
    /// `--pods-alike-window` (10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_alike: Option<PodsAlikeThresholds>,
    /// How long the pods of a node under someone else's planned disruption (lost with it,
    /// stuck terminating on it, left by it) are left to that maintenance before this policy
    /// acts on them (default 1h). The node itself gets no node action while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_grace: Option<Duration>,
    /// When the policy acts, in the operator's time zone (`--time-zone`, default UTC), as kured
    /// schedules reboots. With an Act window declared, the policy acts only inside one; outside,
    /// its decisions are recorded as Skipped (OutsideWindow) and made again when the next opens.
    /// Inside a RecordOnly window, its decisions are dry runs. None declared: it acts any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<Window>,
}

/// A policy's own thresholds for pods failing alike (see `Safety::pods_alike`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minPods) || !has(self.minWorkloads) || self.minWorkloads <= self.minPods")
    .message("spec.safety.podsAlike.minWorkloads cannot exceed minPods: each workload counts with a pod of its own"))]
pub struct PodsAlikeThresholds {
    /// Pods failing alike (2 or more: one pod failing is its own failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100000))]
    pub min_pods: Option<i32>,
    /// Workloads those pods belong to (1 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub min_workloads: Option<i32>,
    /// How close together their failures begin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// A weekly window, from `start` to `end` on each of `days`; a window that ends at or before
/// its start runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// The days it opens on (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<Weekday>,
    /// When it opens, HH:MM on a 24-hour clock.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')")
        .message(Message::Message("must be a time of day as HH:MM on a 24-hour clock, such as 02:00".into())))]
    #[schemars(extend("maxLength" = 5))]
    pub start: String,
    /// When it closes, HH:MM on a 24-hour clock.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')")
        .message(Message::Message("must be a time of day as HH:MM on a 24-hour clock, such as 05:00".into())))]
    #[schemars(extend("maxLength" = 5))]
    pub end: String,
    /// Act (the default): the policy acts inside the window. RecordOnly: it only records.
    #[serde(default)]
    pub mode: WindowMode,
}

impl Window {
    /// `start` and `end` as minutes after midnight (None: not HH:MM; the API server refuses it).
    pub fn minutes(&self) -> Option<(u16, u16)> {
        let parse = |t: &str| {
            let (h, m) = t.split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        Some((parse(&self.start)?, parse(&self.end)?))
    }
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday 0 to Sunday 6.
    pub const fn index(self) -> u8 {
        self as u8
    }
}

/// What a policy does inside a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WindowMode {
    #[default]
    Act,
    RecordOnly,
}

impl Safety {
    pub const DEFAULT_MAX_CONCURRENT: i32 = 1;
    pub const DEFAULT_RATE: Rate = Rate {
        actions: 10,
        per: Duration::from_secs(600),
    };
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(600);
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
    pub const DEFAULT_MAX_UNHEALTHY_PERCENT: u32 = 30;
    pub const DEFAULT_MAX_DISRUPTED_PER_WORKLOAD_PERCENT: u32 = 25;
    pub const DEFAULT_MAINTENANCE_GRACE: Duration = Duration::from_secs(3600);

    /// The maintenance grace in seconds (the default when unset).
    pub fn maintenance_grace_secs(&self) -> i64 {
        self.maintenance_grace
            .unwrap_or(Self::DEFAULT_MAINTENANCE_GRACE)
            .as_std()
            .as_secs() as i64
    }

    /// The cooldown in seconds (the default when unset).
    pub fn cooldown_secs(&self) -> i64 {
        self.cooldown.unwrap_or(Self::DEFAULT_COOLDOWN).as_std().as_secs() as i64
    }

    /// The rate's window in seconds (the default rate's when unset): how long the policy's
    /// actions count, and so how long their times and records must be kept.
    pub fn rate_window_secs(&self) -> i64 {
        let rate = self.rate.as_ref().unwrap_or(&Self::DEFAULT_RATE);
        rate.per.as_std().as_secs() as i64
    }
}

/// A number of actions per window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Actions allowed per window.
    #[schemars(range(min = 1, max = 1000000))]
    pub actions: i32,
    /// The window, for example 10m.
    pub per: Duration,
}

/// What the operator observed of the policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealingPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Invalid, Suspended, Throttled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Targets the policy selects right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_matched: Option<i64>,
    /// Actions taken since the policy was created (not dry-run, not skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_taken: Option<i64>,
    /// When the policy last acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_time: Option<Time>,
}
