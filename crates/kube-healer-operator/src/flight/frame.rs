//! One line of a recording: what one watch delivered, when, trimmed to what kube-healer reads.
//! A frame turns back into the very [`Change`] the engine was given, so replay feeds the engine
//! what the live operator's engine saw.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::DynamicObject;
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use kube_healer_core::decide::Maintainer;

use super::trim;
use crate::watch::Change;

/// The watches a recording holds (HealingActions are left out: a replay makes its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    Pods,
    Nodes,
    Events,
    Leases,
    Namespaces,
    HealingPolicies,
    /// Other tools' maintenance resources (core's `Maintainer`).
    NodeClaims,
    Machines,
    NodeMaintenances,
}

impl Watch {
    pub const ALL: [Watch; 9] = [
        Watch::Pods,
        Watch::Nodes,
        Watch::Events,
        Watch::Leases,
        Watch::Namespaces,
        Watch::HealingPolicies,
        Watch::NodeClaims,
        Watch::Machines,
        Watch::NodeMaintenances,
    ];

    /// The resource name the operator's watches go by (as in `Change::WatchFailed`).
    pub fn resource(self) -> &'static str {
        match self {
            Watch::Pods => "pods",
            Watch::Nodes => "nodes",
            Watch::Events => "events",
            Watch::Leases => "leases",
            Watch::Namespaces => "namespaces",
            Watch::HealingPolicies => "healingpolicies",
            Watch::NodeClaims => Maintainer::NodeClaim.resource(),
            Watch::Machines => Maintainer::Machine.resource(),
            Watch::NodeMaintenances => Maintainer::NodeMaintenance.resource(),
        }
    }

    fn of_maintainer(m: Maintainer) -> Watch {
        match m {
            Maintainer::NodeClaim => Watch::NodeClaims,
            Maintainer::Machine => Watch::Machines,
            Maintainer::NodeMaintenance => Watch::NodeMaintenances,
        }
    }

    fn from_resource(resource: &str) -> Option<Watch> {
        Watch::ALL.into_iter().find(|w| w.resource() == resource)
    }
}

/// What a watch delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A (re)list begins.
    Init,
    /// An object of the list.
    InitApply,
    /// The list is complete.
    InitDone,
    Apply,
    Delete,
    /// The watch failed: its store is not current until it has listed again.
    Failed,
}

/// One recorded watch event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// When it was delivered, in Unix milliseconds.
    pub t: i64,
    pub w: Watch,
    pub e: Kind,
    /// The object, trimmed (see [`trim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<Value>,
}

/// Why a frame's object is not the watch's object.
#[derive(Debug, thiserror::Error)]
pub enum BadObject {
    #[error("the object is missing")]
    Missing,
    #[error("at {path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a failed watch carries no object")]
    OfFailedWatch,
}

/// A frame that cannot be turned back into a watch event.
#[derive(Debug, thiserror::Error)]
#[error("{watch} {kind:?} frame: {problem}")]
pub struct FrameError {
    pub watch: &'static str,
    pub kind: Kind,
    #[source]
    pub problem: BadObject,
}

impl Frame {
    /// The frame for a change at `t` (Unix ms); None for what a recording leaves out
    /// (HealingActions).
    pub fn of(change: &Change, t: i64) -> Option<Frame> {
        fn parts<K: Serialize>(
            w: Watch,
            event: &watcher::Event<K>,
            trim: fn(&mut Value),
        ) -> (Watch, Kind, Option<Value>) {
            let object = |k: &K| {
                let mut v = serde_json::to_value(k).unwrap_or(Value::Null);
                trim(&mut v);
                Some(v)
            };
            match event {
                watcher::Event::Init => (w, Kind::Init, None),
                watcher::Event::InitApply(k) => (w, Kind::InitApply, object(k)),
                watcher::Event::InitDone => (w, Kind::InitDone, None),
                watcher::Event::Apply(k) => (w, Kind::Apply, object(k)),
                watcher::Event::Delete(k) => (w, Kind::Delete, object(k)),
            }
        }
        let (w, e, o) = match change {
            Change::Pod(e) => parts(Watch::Pods, e, trim::pod),
            Change::Node(e) => parts(Watch::Nodes, e, trim::node),
            Change::Event(e) => parts(Watch::Events, e, trim::event),
            Change::Lease(e) => parts(Watch::Leases, e, trim::lease),
            Change::Namespace(e) => parts(Watch::Namespaces, e, trim::namespace),
            Change::Policy(e) => parts(Watch::HealingPolicies, e, trim::policy),
            Change::Maintainer(m, e) => parts(Watch::of_maintainer(*m), e, trim::maintainer),
            Change::WatchFailed(resource) => (Watch::from_resource(resource)?, Kind::Failed, None),
            Change::Record(_) => return None,
        };
        Some(Frame { t, w, e, o })
    }

    /// The object's key within its watch (namespace/name), if it has one.
    pub fn key(&self) -> Option<String> {
        let meta = self.o.as_ref()?.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        Some(match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        })
    }

    /// The watch event this frame recorded.
    pub fn into_change(self) -> Result<Change, FrameError> {
        let (watch, kind) = (self.w, self.e);
        let fail = |problem: BadObject| FrameError {
            watch: watch.resource(),
            kind,
            problem,
        };
        if kind == Kind::Failed {
            return Ok(Change::WatchFailed(watch.resource()));
        }
        fn event<K: serde::de::DeserializeOwned>(
            kind: Kind,
            o: Option<Value>,
        ) -> Result<watcher::Event<K>, BadObject> {
            let object = || -> Result<K, BadObject> {
                let o = o.ok_or(BadObject::Missing)?;
                serde_path_to_error::deserialize(o).map_err(|e| BadObject::Invalid {
                    path: e.path().to_string(),
                    source: e.into_inner(),
                })
            };
            Ok(match kind {
                Kind::Init => watcher::Event::Init,
                Kind::InitDone => watcher::Event::InitDone,
                Kind::InitApply => watcher::Event::InitApply(object()?),
                Kind::Apply => watcher::Event::Apply(object()?),
                Kind::Delete => watcher::Event::Delete(object()?),
                Kind::Failed => return Err(BadObject::OfFailedWatch),
            })
        }
        let o = self.o;
        Ok(match watch {
            Watch::Pods => Change::Pod(Box::new(event::<Pod>(kind, o).map_err(fail)?)),
            Watch::Nodes => Change::Node(Box::new(event::<Node>(kind, o).map_err(fail)?)),
            Watch::Events => Change::Event(Box::new(event::<Event>(kind, o).map_err(fail)?)),
            Watch::Leases => Change::Lease(Box::new(event::<Lease>(kind, o).map_err(fail)?)),
            Watch::Namespaces => Change::Namespace(Box::new(event::<Namespace>(kind, o).map_err(fail)?)),
            Watch::HealingPolicies => {
                Change::Policy(Box::new(event::<DynamicObject>(kind, o).map_err(fail)?))
            }
            Watch::NodeClaims | Watch::Machines | Watch::NodeMaintenances => {
                let m = Maintainer::from_resource(watch.resource()).ok_or(fail(BadObject::Missing))?;
                Change::Maintainer(m, Box::new(event::<DynamicObject>(kind, o).map_err(fail)?))
            }
        })
    }
}
