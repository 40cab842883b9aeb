//! A pod's lifecycle timeline: the phase, condition and container-state changes the watcher saw,
//! with times, merged with the pod's events when it is read. The API keeps only a pod's current
//! state; a record or `explain` shows how it got there (ErrImagePull, then ImagePullBackOff, a
//! restart, Unschedulable cleared and back).
//!
//! Bounded, and paid for by pods in trouble only: a pod that starts cleanly keeps nothing (its
//! story can be told from the object itself, [`moments_of`]). The first change that is trouble
//! (a waiting reason past creation, a failed exit, a restart, Unschedulable, phase Failed or
//! Unknown) starts the pod's history from its view before that change; from then on each change
//! is kept, at most [`MOMENTS_KEPT`], the first (how it began) and the latest.

mod evidence;

pub use evidence::{describe, evidence, merge, node_evidence};

use crate::view::{ContainerState, ContainerView, PodPhase, PodView, Secs, Shared, Stamp, Status};

/// Moments kept per pod: the first and the latest.
pub const MOMENTS_KEPT: usize = 16;

/// A pod's kept history: empty (no allocation) until the pod is in trouble.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline(Option<Box<History>>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct History {
    moments: Vec<Moment>,
    /// Moments dropped between the first and the kept latest.
    dropped: u32,
}

/// One change, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moment {
    pub at: Stamp,
    pub change: Change,
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Scheduled(Shared),
    Phase(PodPhase),
    /// A condition is now this (True once it leaves the view, which keeps only the others).
    Condition {
        type_: Shared,
        status: Status,
        reason: Option<Shared>,
    },
    Container {
        name: Shared,
        init: bool,
        state: Run,
        reason: Option<Shared>,
        exit_code: i32,
        restarts: u32,
    },
    /// Deletion was asked for (at the deletionTimestamp less the grace period).
    Deleting,
}

/// A container state's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Waiting,
    Running,
    Terminated,
    Unknown,
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The kept moments, oldest first, and how many were dropped between them.
    pub fn moments(&self) -> (&[Moment], u32) {
        self.0.as_ref().map_or((&[], 0), |h| (&h.moments, h.dropped))
    }

    /// The bytes it holds on the heap (the strings it names are shared with the views).
    pub fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |h| {
            std::mem::size_of::<History>() + h.moments.capacity() * std::mem::size_of::<Moment>()
        })
    }

    fn push(&mut self, moment: Moment) {
        let history = self.0.get_or_insert_with(|| {
            Box::new(History {
                moments: Vec::new(),
                dropped: 0,
            })
        });
        if history.moments.len() >= MOMENTS_KEPT {
            // Keep the first: how the story began.
            history.moments.remove(1);
            history.dropped += 1;
        }
        history.moments.push(moment);
    }
}

/// Carries the pod's history over from its previous view (same UID) and adds what changed since;
/// starts one if the change is trouble. A pod seen for the first time starts one if it is
/// already in trouble.
pub fn carry(view: &mut PodView, old: Option<&PodView>, now: Secs) {
    let old = old.filter(|o| o.uid == view.uid);
    let mut timeline = old.map(|o| o.timeline.clone()).unwrap_or_default();
    let changes = match old {
        Some(o) => changes(o, view, now),
        None => Vec::new(),
    };
    if timeline.is_empty() {
        let begins = match old {
            Some(o) if changes.iter().any(trouble) => Some(o),
            None if moments_of(view, now).iter().any(trouble) => Some(&*view),
            _ => None,
        };
        if let Some(from) = begins {
            for m in moments_of(from, now) {
                timeline.push(m);
            }
        }
    }
    if !timeline.is_empty() {
        for m in changes {
            timeline.push(m);
        }
    }
    view.timeline = timeline;
}

/// The pod's story: its kept history, or (a pod that kept none, or one read from a dump) what
/// its view tells.
pub fn of(view: &PodView, now: Secs) -> Vec<Moment> {
    match view.timeline.moments() {
        ([], _) => moments_of(view, now),
        (kept, _) => kept.to_vec(),
    }
}

/// What a view tells of its own story: created, scheduled, its phase, its conditions that are not
/// True and its containers' states, each at the time the object gives, oldest first.
pub fn moments_of(view: &PodView, now: Secs) -> Vec<Moment> {
    let at = |t: Option<Secs>| Stamp::new(Some(t.unwrap_or(now)));
    let mut moments = vec![Moment {
        at: at(Some(view.created())),
        change: Change::Created,
    }];
    if let (Some(node), Some(t)) = (&view.node, view.scheduled()) {
        moments.push(Moment {
            at: at(Some(t)),
            change: Change::Scheduled(node.clone()),
        });
    }
    let phase_at = match view.phase {
        PodPhase::Pending => Some(view.created()),
        PodPhase::Running => view.started(),
        _ => None,
    };
    moments.push(Moment {
        at: at(phase_at),
        change: Change::Phase(view.phase),
    });
    for c in view.conditions.iter() {
        moments.push(Moment {
            at: at(c.since),
            change: Change::Condition {
                type_: c.type_.clone(),
                status: c.status,
                reason: c.reason.clone(),
            },
        });
    }
    for c in view.containers.iter() {
        moments.push(Moment {
            at: at(state_time(c)),
            change: container(c),
        });
    }
    if let Some(end) = view.deletion() {
        moments.push(Moment {
            at: at(Some(end - view.grace_seconds.unwrap_or(0) as Secs)),
            change: Change::Deleting,
        });
    }
    moments.sort_by_key(|m| m.at.get());
    moments
}

/// What changed from `old` to `new`, each at the time the object gives or `now`.
fn changes(old: &PodView, new: &PodView, now: Secs) -> Vec<Moment> {
    let at = |t: Option<Secs>| Stamp::new(Some(t.unwrap_or(now)));
    let mut out = Vec::new();
    if new.node.is_some() && old.node != new.node {
        let node = new.node.clone().unwrap_or_default();
        out.push(Moment {
            at: at(new.scheduled()),
            change: Change::Scheduled(node),
        });
    }
    if old.phase != new.phase {
        out.push(Moment {
            at: at(None),
            change: Change::Phase(new.phase),
        });
    }
    for c in new.conditions.iter() {
        let same = old
            .condition(&c.type_)
            .is_some_and(|o| o.status == c.status && o.reason == c.reason);
        if !same {
            out.push(Moment {
                at: at(c.since),
                change: Change::Condition {
                    type_: c.type_.clone(),
                    status: c.status,
                    reason: c.reason.clone(),
                },
            });
        }
    }
    for c in old
        .conditions
        .iter()
        .filter(|c| new.condition(&c.type_).is_none())
    {
        out.push(Moment {
            at: at(None),
            change: Change::Condition {
                type_: c.type_.clone(),
                status: Status::True,
                reason: None,
            },
        });
    }
    for c in new.containers.iter() {
        let before = old
            .containers
            .iter()
            .find(|o| o.name == c.name && o.init == c.init);
        if before.is_none_or(|o| container(o) != container(c)) {
            out.push(Moment {
                at: at(state_time(c)),
                change: container(c),
            });
        }
    }
    if old.deletion().is_none()
        && let Some(end) = new.deletion()
    {
        out.push(Moment {
            at: at(Some(end - new.grace_seconds.unwrap_or(0) as Secs)),
            change: Change::Deleting,
        });
    }
    out
}

fn container(c: &ContainerView) -> Change {
    let (state, reason, exit_code) = match &c.state {
        ContainerState::Waiting { reason, .. } => (Run::Waiting, reason.clone(), 0),
        ContainerState::Running { .. } => (Run::Running, None, 0),
        ContainerState::Terminated {
            reason, exit_code, ..
        } => (Run::Terminated, reason.clone(), *exit_code),
        ContainerState::Unknown => (Run::Unknown, None, 0),
    };
    Change::Container {
        name: c.name.clone(),
        init: c.init,
        state,
        reason,
        exit_code,
        restarts: c.restarts,
    }
}

fn state_time(c: &ContainerView) -> Option<Secs> {
    match &c.state {
        ContainerState::Running { started } => started.or(c.state_since),
        ContainerState::Terminated { finished, .. } => finished.or(c.state_since),
        _ => c.state_since,
    }
}

/// Whether a moment is trouble, worth a history: not one of a clean start.
fn trouble(m: &Moment) -> bool {
    match &m.change {
        Change::Phase(p) => matches!(p, PodPhase::Failed | PodPhase::Unknown),
        Change::Condition { type_, status, .. } => &**type_ == "PodScheduled" && *status != Status::True,
        Change::Container {
            state,
            reason,
            exit_code,
            restarts,
            ..
        } => {
            *restarts > 0
                || (*state == Run::Terminated && *exit_code != 0)
                || (*state == Run::Waiting
                    && reason
                        .as_deref()
                        .is_some_and(|r| !matches!(r, "ContainerCreating" | "PodInitializing")))
        }
        Change::Created | Change::Scheduled(_) | Change::Deleting => false,
    }
}
