//! What the engine and the executor say to each other: work to do, and what came of it. The
//! engine decides and sends; the executor records, calls the API server, and answers. Neither
//! reaches into the other.

use std::sync::Arc;
use std::time::Duration;

use kube_healer_api::{HealingActionSpec, HealingStep};
use kube_healer_core::decide::Seen;
use kube_healer_core::view::{OwnerKind, Secs};

/// Why a decision is held back, recorded as Skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub reason: kube_healer_api::reasons::HoldReason,
    pub message: String,
}

/// A decision to record (and, unless held or dry, to carry out).
#[derive(Clone, Debug)]
pub struct ActionRequest {
    /// The record's name, derived from the decision (a decision recorded once is never repeated).
    pub name: String,
    pub spec: HealingActionSpec,
    pub step: HealingStep,
    /// Held back: recorded as Skipped, nothing changed.
    pub hold: Option<Hold>,
    /// The pod's controller (kind, name), for RestartOwner.
    pub owner: Option<(OwnerKind, String)>,
    /// The policy's cooldown: RestartOwner restarts a workload once within it.
    pub cooldown: Duration,
    /// Namespaces the policy leaves alone (a drain leaves their pods on the node).
    pub protected_namespaces: Arc<[String]>,
    /// What the decision saw, for the recheck on fresh reads right before the call (None: the
    /// request changes nothing: held, a dry run, an Event).
    pub seen: Option<Box<Seen>>,
    /// The ladder's last action before this decision, to take the decision back if it cannot
    /// be recorded.
    pub before: Option<(usize, Secs)>,
    /// For a ladder's first step: when the failure became due for this operator (Unix
    /// milliseconds), for the reaction time metric.
    pub due_ms: Option<i64>,
    /// What of a process that ended the decision takes up, if anything (set by the engine).
    pub takes_up: TakesUp,
}

/// What a decision takes up that a process that ended left unfinished. A decision made again is
/// carried out under what made it before: its own record, or the batch that named it (with that
/// batch's other pods only, so that they make the same batch name), never in a new batch with
/// other pods, which would leave the first record for the leader to settle past its deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TakesUp {
    /// A new decision, or one whose record was finished.
    #[default]
    Nothing,
    /// Its own record, left without an outcome: carried out alone, under it.
    Own,
    /// The batch record, still marked in flight, that names it.
    Batch(String),
}

impl ActionRequest {
    /// Whether carrying it out takes a place in its policy's maxConcurrent (a real action,
    /// neither held nor a dry run).
    pub fn in_flight(&self) -> bool {
        self.hold.is_none() && !self.spec.dry_run
    }
}

/// Work for the executor.
#[derive(Clone, Debug)]
pub enum Work {
    Act(Box<ActionRequest>),
    /// The policy's failure cleared on the node: undo its cordon and taints, if kube-healer made
    /// them, once the node read afresh has been Ready for `debounce` seconds (since
    /// `ready_since`, as the engine saw it, when the fresh Ready condition carries no time) and
    /// none of the node policies (`watch`) sees a failure on it.
    Revert {
        policy: String,
        node: String,
        debounce: Secs,
        ready_since: Option<Secs>,
        watch: std::sync::Arc<[kube_healer_core::policy::CompiledPolicy]>,
    },
    /// Someone undid kube-healer's marks on the node (lifted its cordon, removed its taint):
    /// record it there (the marks come off).
    MarksLifted {
        node: String,
    },
    /// Reschedule's avoid taint on the node expired: remove it.
    Unavoid {
        node: String,
    },
    /// A HealingAction past its retention: delete it.
    DeleteRecord {
        name: String,
    },
    /// A batch record still marked in flight, maybe left by a process that ended: once its
    /// deadline (`until`, Unix seconds) has passed, finish it if it is still unfinished.
    ResumeBatch {
        name: String,
        until: Secs,
    },
    /// Such a batch, past its deadline, that its policy could not decide now (paused,
    /// suspended, a dry run, outside its windows): taken back (nothing of it was done), with
    /// why; its pods are decided afresh.
    SettleBatch {
        name: String,
        reason: &'static str,
        message: String,
    },
    /// A record without an outcome, of a process that ended (not this replica's action in
    /// flight): if its target is gone, finish it (nothing decides a gone target again).
    FinishUnfinished {
        name: String,
    },
}

/// Whether this replica leads, as the executor sees it: actions check it where they run, before
/// each call, so that a replica that lost its Lease stops at the next step instead of acting
/// beside the new leader.
/// (`None`, the default: always leading.)
#[derive(Clone, Debug, Default)]
pub struct Leading(Option<tokio::sync::watch::Receiver<bool>>);

impl Leading {
    pub fn new(leader: tokio::sync::watch::Receiver<bool>) -> Self {
        Leading(Some(leader))
    }

    pub fn now(&self) -> bool {
        self.0.as_ref().is_none_or(|rx| *rx.borrow())
    }

    /// Resolves once this replica does not lead (at once if it does not now, or if the election
    /// ended: then nobody can tell that it still leads).
    pub async fn lost(&self) {
        match &self.0 {
            Some(rx) => {
                let _ = rx.clone().wait_for(|leading| !leading).await;
            }
            None => std::future::pending().await,
        }
    }

    /// `work` until `timeout`, as long as this replica leads: None once it does not (what it
    /// followed is left for the next leader to take up).
    pub async fn within<T>(
        &self,
        timeout: std::time::Duration,
        work: impl std::future::Future<Output = T>,
    ) -> Option<Result<T, tokio::time::error::Elapsed>> {
        tokio::select! {
            done = tokio::time::timeout(timeout, work) => Some(done),
            () = self.lost() => None,
        }
    }
}

/// What came of a request (for the engine's budget).
#[derive(Clone, Debug)]
pub struct ActionDone {
    pub policy: String,
    /// The request's record.
    pub name: String,
    /// Whether the request counted as in flight (a real action, neither held nor a dry run).
    pub was_in_flight: bool,
    pub carried_out: bool,
    /// The target was certainly left as it was (the call never sent, or refused): a removal it
    /// would have been counts no more against its workload's limit.
    pub untouched: bool,
    /// The decision could not be recorded (the API server refused or did not answer for longer
    /// than the retries last), so it was not carried out either: the engine takes it back and
    /// decides again later, on fresh state.
    pub unrecorded: Option<Box<ActionRequest>>,
}

/// What other tools' resources say of the nodes they take down (core's `Maintainer`), as the
/// engine last saw them: shared with the executor, whose recheck sets it on the node it reads
/// afresh, so that a NodeMaintenance created since the decision stops a node action as a
/// person's cordon would. Bounded by the nodes under such maintenance.
#[derive(Clone, Debug, Default)]
pub struct Maintained(Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<str>>>>);

impl Maintained {
    pub fn set(&self, node: &str, signal: Option<Arc<str>>) {
        let mut map = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match signal {
            Some(s) => map.insert(node.to_string(), s),
            None => map.remove(node),
        };
    }

    pub fn of(&self, node: &str) -> Option<Arc<str>> {
        let map = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(node).cloned()
    }
}
