//! The executor: carries out the engine's work, side by side and bounded, and answers each
//! request with what came of it. It knows nothing of stores, policies or decisions.

use std::sync::Arc;

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube_healer_api::HealingAction;
use tokio::sync::{Semaphore, mpsc};

use crate::act::handle::{Handled, Io, handle};
use crate::act::node;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::protocol::{ActionDone, Work};
use crate::record::writer;

/// Actions carried out at the same time, at most (each policy's maxConcurrent applies within).
const MAX_PARALLEL_ACTIONS: usize = 64;

/// Runs work until the channel closes. `instance` names this replica in the Events it writes.
pub async fn executor(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Work>,
    done: mpsc::UnboundedSender<ActionDone>,
    metrics: Arc<Metrics>,
    instance: String,
    clock: Arc<dyn Clock>,
) {
    let records: Api<HealingAction> = Api::all(client.clone());
    let reporter = Reporter {
        controller: "kube-healer".into(),
        instance: Some(instance),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // An eviction may wait minutes on a PodDisruptionBudget: actions run side by side, bounded.
    let slots = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    while let Some(work) = rx.recv().await {
        let req = match work {
            Work::Act(req) => *req,
            Work::Revert { policy, node } => {
                let (client, recorder) = (client.clone(), recorder.clone());
                tokio::spawn(async move { node::revert(&client, &recorder, &policy, &node).await });
                continue;
            }
            Work::DeleteRecord { name } => {
                writer::delete(&records, &name).await;
                continue;
            }
            Work::Unavoid { node } => {
                let (client, now) = (client.clone(), clock.now());
                tokio::spawn(async move { node::remove_expired_avoid(&client, &node, now).await });
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (client, records, recorder, done, metrics, clock) = (
            client.clone(),
            records.clone(),
            recorder.clone(),
            done.clone(),
            metrics.clone(),
            clock.clone(),
        );
        tokio::spawn(async move {
            let policy = req.spec.policy.clone();
            let was_in_flight = req.in_flight();
            let io = Io {
                client: &client,
                records: &records,
                recorder: &recorder,
                metrics: &metrics,
                clock: clock.as_ref(),
            };
            let handled = handle(io, req).await;
            let _ = done.send(ActionDone {
                policy,
                was_in_flight,
                carried_out: matches!(handled, Handled::CarriedOut),
                unrecorded: match handled {
                    Handled::Unrecorded(req) => Some(req),
                    _ => None,
                },
            });
            drop(permit);
        });
    }
}
