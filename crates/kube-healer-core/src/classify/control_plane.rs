//! The control plane as a cause. When kube-healer's own API calls fail (429, 5xx, no answer) or
//! crawl, the API server or etcd is in trouble, and what the cluster says about its nodes cannot
//! be trusted: heartbeats and status updates are late because they could not be written, not
//! because the nodes are down. Healing nodes then (cordons, drains, taints, force-deletes of their
//! pods) acts on the symptoms of the control plane's outage, and adds to its load. So while a
//! share of recent calls fails or is slow, every node action is held, and so are the pod findings
//! that stem from nodes; it clears on healthy calls (not on silence: holding node actions is
//! what stops most calls), and the usual cool-off follows.

use kube_healer_api::FailureClass;

use super::node_families::node_family_classes;
use crate::finding::{Correlated, CorrelatedCause};
use crate::thresholds::Knobs;

/// One API call kube-healer made, as the control plane answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSample {
    /// When the answer came (Unix milliseconds).
    pub at_ms: i64,
    /// How long the call took.
    pub latency_ms: u64,
    /// It failed for a reason of the control plane's: 429, 500, 502, 503, 504, a transport error
    /// or no answer in time. (A 404 or a refused precondition is an answer.)
    pub failed: bool,
}

/// The classes the control plane's cause holds: every node class, and the pod findings that
/// stem from a node (lost with it, stuck terminating on it, left by it).
pub fn held_classes() -> Vec<FailureClass> {
    let from_nodes = FailureClass::ALL
        .iter()
        .copied()
        .filter(|c| c.properties().inherits_node_cause);
    node_family_classes().chain(from_nodes).collect()
}

/// How far back the judgement reaches when the window holds too few calls: holding node actions
/// is what stops most calls, so a cause must not clear for want of calls, only on healthy ones
/// (or after this long without any).
pub const QUIET_MS: i64 = 5 * 60 * 1000;

/// The control plane's cause, if the calls answered within the window before `now_ms` say it is
/// failing or slow: at least `control_plane_calls_min` calls, of which at least
/// `control_plane_bad_percent` failed or took `control_plane_slow_ms` or more. When the window
/// holds fewer calls than that, the latest `control_plane_calls_min` calls of the last
/// [`QUIET_MS`] are judged instead: the cause clears on healthy calls, not on silence. `samples`
/// oldest first.
pub fn control_plane(samples: &[CallSample], now_ms: i64, knobs: &Knobs) -> Option<Correlated> {
    let since = now_ms - knobs.control_plane_window * 1000;
    let answered: Vec<&CallSample> = samples.iter().filter(|s| s.at_ms <= now_ms).collect();
    let mut recent: Vec<&CallSample> = answered.iter().copied().filter(|s| s.at_ms > since).collect();
    if recent.len() < knobs.control_plane_calls_min {
        let quiet: Vec<&CallSample> = answered
            .iter()
            .copied()
            .filter(|s| s.at_ms > now_ms - QUIET_MS)
            .collect();
        recent = quiet[quiet.len().saturating_sub(knobs.control_plane_calls_min)..].to_vec();
    }
    let failed = recent.iter().filter(|s| s.failed).count();
    let slow = recent
        .iter()
        .filter(|s| !s.failed && s.latency_ms >= knobs.control_plane_slow_ms)
        .count();
    let bad = failed + slow;
    if recent.len() < knobs.control_plane_calls_min
        || bad * 100 < knobs.control_plane_bad_percent * recent.len()
    {
        return None;
    }
    let first_bad = recent
        .iter()
        .filter(|s| s.failed || s.latency_ms >= knobs.control_plane_slow_ms)
        .map(|s| s.at_ms)
        .min()
        .unwrap_or(now_ms);
    Some(Correlated {
        cause: CorrelatedCause::ControlPlane,
        classes: held_classes(),
        members: Vec::new(),
        bursts: Vec::new(),
        since: first_bad.div_euclid(1000),
        message: format!(
            "kube-healer's own API calls are failing or slow: {failed} of the last {} failed and {slow} took {} s or more: likely an overloaded or failing API server or etcd, whose view of the nodes cannot be trusted; node actions are held until its calls are healthy again",
            recent.len(),
            knobs.control_plane_slow_ms / 1000,
        ),
    })
}
