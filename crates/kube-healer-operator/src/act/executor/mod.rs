//! The executor: carries out the engine's work, side by side and bounded, and answers each
//! request with what came of it. It knows nothing of stores, policies or decisions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube_healer_api::HealingAction;
use tokio::sync::{Semaphore, mpsc};

use crate::act::batch;
use crate::act::handle::{Handled, Io, handle};
use crate::act::job::JobsPlace;
use crate::act::node;
use crate::act::unfinished;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::protocol::{ActionDone, ActionRequest, Leading, Maintained, Work};
use crate::record::writer;
use kube_healer_api::batch::MAX_MEMBERS;

/// Actions carried out at the same time in each lane, at most (each policy's maxConcurrent
/// applies within): one lane for quick one-call actions, one for those that wait (an eviction on
/// a PodDisruptionBudget, a drain, a Job), so that a deletion never queues behind 64 drains.
const MAX_PARALLEL_ACTIONS: usize = 64;

/// Who acts, and where: this replica's name in the Events it writes, and where node jobs run.
#[derive(Clone, Debug, Default)]
pub struct Acting {
    pub instance: String,
    pub jobs: JobsPlace,
    /// What other tools' resources say of the nodes, for the recheck.
    pub maintained: Maintained,
}

/// Runs work until the channel closes.
pub async fn executor(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Work>,
    done: mpsc::UnboundedSender<ActionDone>,
    metrics: Arc<Metrics>,
    acting: Acting,
    clock: Arc<dyn Clock>,
    leading: Leading,
) {
    let Acting {
        instance,
        jobs,
        maintained,
    } = acting;
    let jobs = Arc::new(jobs);
    let records: Api<HealingAction> = Api::all(client.clone());
    let reporter = Reporter {
        controller: "kube-healer".into(),
        instance: Some(instance),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // An eviction may wait minutes on a PodDisruptionBudget: actions run side by side, bounded,
    // in two lanes. The receive loop never waits for a slot (only, 10 ms, for the removals of
    // dead pods decided together): each request waits for its lane's slot in a task of its
    // own, and reverts, record deletions and avoid-taint removals do not queue.
    let quick = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    let long = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    let lanes = Lanes {
        lent: Lent {
            client,
            records,
            recorder,
            done,
            metrics,
            clock,
            jobs,
            leading,
            maintained,
        },
        quick,
        long,
    };
    while let Some(first) = rx.recv().await {
        let works = gathered(first, &mut rx).await;
        let mut batches: BTreeMap<batch::BatchKey, Vec<ActionRequest>> = BTreeMap::new();
        for work in works {
            // Work is the leader's: a replica that lost the leadership takes none (the next
            // leader decides afresh), and answers each request so that its budget stays right.
            if !lanes.lent.leading.now() {
                if let Work::Act(req) = work {
                    tracing::info!(record = %req.name, "not leading: the decision is dropped, the next leader decides afresh");
                    lanes.answer(&req, Handled::NotCarriedOut);
                }
                continue;
            }
            match work {
                Work::Act(req) => match batch::key(&req) {
                    Some(key) => batches.entry(key).or_default().push(*req),
                    None => lanes.one(*req),
                },
                other => lanes.aside(other),
            }
        }
        for (_, reqs) in batches {
            for chunk in reqs.chunks(MAX_MEMBERS) {
                match chunk {
                    [one] => lanes.one(one.clone()),
                    many => lanes.batch(many.to_vec()),
                }
            }
        }
    }
}

/// The work that came with `first`: a removal of a dead pod waits a moment for the others decided
/// with it, to share one record with them (see `batch`); nothing else waits.
async fn gathered(first: Work, rx: &mut mpsc::UnboundedReceiver<Work>) -> Vec<Work> {
    let mut works = vec![first];
    if matches!(&works[0], Work::Act(r) if batch::key(r).is_some()) {
        tokio::time::sleep(GATHER).await;
        while works.len() < GATHERED_AT_MOST
            && let Ok(work) = rx.try_recv()
        {
            works.push(work);
        }
    }
    works
}

/// How long a removal of a dead pod waits for the others decided with it.
const GATHER: Duration = Duration::from_millis(10);
/// Work taken at once while gathering.
const GATHERED_AT_MOST: usize = 10 * MAX_MEMBERS;

/// The two lanes, and what each task is lent.
struct Lanes {
    lent: Lent,
    quick: Arc<Semaphore>,
    long: Arc<Semaphore>,
}

impl Lanes {
    /// Work beside the actions, in a task of its own: reverts, record deletions, avoid-taint
    /// removals, and the records a previous leader left unfinished.
    fn aside(&self, work: Work) {
        match work {
            Work::Act(req) => self.one(*req),
            Work::Revert {
                policy,
                node,
                debounce,
                ready_since,
                watch,
            } => {
                let (client, recorder) = (self.lent.client.clone(), self.lent.recorder.clone());
                let recovered = node::Recovered {
                    debounce,
                    ready_since,
                    now: self.lent.clock.now(),
                    watch,
                };
                tokio::spawn(
                    async move { node::revert(&client, &recorder, (&policy, &node), recovered).await },
                );
            }
            Work::MarksLifted { node } => {
                let (client, recorder) = (self.lent.client.clone(), self.lent.recorder.clone());
                let now = self.lent.clock.now();
                tokio::spawn(async move { node::acknowledge_lift(&client, &recorder, &node, now).await });
            }
            Work::DeleteRecord { name } => {
                let records = self.lent.records.clone();
                tokio::spawn(async move { writer::delete(&records, &name).await });
            }
            Work::Unavoid { node } => {
                let (client, now) = (self.lent.client.clone(), self.lent.clock.now());
                tokio::spawn(async move { node::remove_expired_avoid(&client, &node, now).await });
            }
            Work::ResumeBatch { name, until } => self.resume(name, until),
            Work::SettleBatch {
                name,
                reason,
                message,
            } => {
                let lent = self.lent.clone();
                tokio::spawn(async move {
                    if lent.leading.now() {
                        batch::take_back_cut_short(lent.io(), &name, reason, &message).await;
                    }
                });
            }
            Work::FinishUnfinished { name } => self.finish_unfinished(name),
        }
    }

    fn answer(&self, req: &ActionRequest, handled: Handled) {
        answer(&self.lent.done, req, handled);
    }

    /// One request, under a record of its own, in its lane.
    fn one(&self, req: ActionRequest) {
        let lane = if req.spec.action.properties().takes_long {
            &self.long
        } else {
            &self.quick
        };
        let (lane, lent) = (lane.clone(), self.lent.clone());
        tokio::spawn(async move {
            let Ok(permit) = lane.acquire_owned().await else {
                return;
            };
            let handled = handle(lent.io(), req.clone()).await;
            answer(&lent.done, &req, handled);
            drop(permit);
        });
    }

    /// Removals of dead pods under one record, in the quick lane.
    fn batch(&self, reqs: Vec<ActionRequest>) {
        let (lane, lent) = (self.quick.clone(), self.lent.clone());
        tokio::spawn(async move {
            let Ok(permit) = lane.acquire_owned().await else {
                return;
            };
            let done = lent.done.clone();
            batch::handle_batch(lent.io(), reqs, &move |req, handled| answer(&done, req, handled)).await;
            drop(permit);
        });
    }

    /// A record without an outcome, finished if its target is gone: in the quick lane, so that a
    /// new leader's many such records wait their turn like actions.
    fn finish_unfinished(&self, name: String) {
        let (lane, lent) = (self.quick.clone(), self.lent.clone());
        tokio::spawn(async move {
            let Ok(_permit) = lane.acquire_owned().await else {
                return;
            };
            unfinished::finish_if_gone(lent.io(), &name).await;
        });
    }

    /// A batch left unfinished by a process that ended: finished once its deadline has passed.
    fn resume(&self, name: String, until: i64) {
        let lent = self.lent.clone();
        tokio::spawn(async move {
            let wait = (until - lent.clock.now()).max(0) as u64 + 1;
            tokio::time::sleep(Duration::from_secs(wait)).await;
            if lent.leading.now() {
                batch::resume(lent.io(), &name).await;
            }
        });
    }
}

/// The clients and handles a spawned task owns.
#[derive(Clone)]
struct Lent {
    client: Client,
    records: Api<HealingAction>,
    recorder: Recorder,
    done: mpsc::UnboundedSender<ActionDone>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    jobs: Arc<JobsPlace>,
    leading: Leading,
    maintained: Maintained,
}

impl Lent {
    fn io(&self) -> Io<'_> {
        Io {
            client: &self.client,
            records: &self.records,
            recorder: &self.recorder,
            metrics: &self.metrics,
            clock: self.clock.as_ref(),
            jobs: &self.jobs,
            leading: &self.leading,
            maintained: &self.maintained,
        }
    }
}

/// Tells the engine what came of a request.
fn answer(done: &mpsc::UnboundedSender<ActionDone>, req: &ActionRequest, handled: Handled) {
    let _ = done.send(ActionDone {
        policy: req.spec.policy.clone(),
        name: req.name.clone(),
        was_in_flight: req.in_flight(),
        carried_out: matches!(handled, Handled::CarriedOut),
        untouched: matches!(handled, Handled::Untouched),
        unrecorded: match handled {
            Handled::Unrecorded(req) => Some(req),
            _ => None,
        },
    });
}

#[cfg(test)]
mod tests;
