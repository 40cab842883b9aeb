//! The executor: carries out the engine's work, side by side and bounded, and answers each
//! request with what came of it. It knows nothing of stores, policies or decisions.

use std::sync::Arc;

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube_healer_api::HealingAction;
use tokio::sync::{Semaphore, mpsc};

use crate::act::dispatch::takes_long;
use crate::act::handle::{Handled, Io, handle};
use crate::act::job::JobsPlace;
use crate::act::node;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::protocol::{ActionDone, Leading, Work};
use crate::record::writer;

/// Actions carried out at the same time in each lane, at most (each policy's maxConcurrent
/// applies within): one lane for quick one-call actions, one for those that wait (an eviction on
/// a PodDisruptionBudget, a drain, a Job), so that a deletion never queues behind 64 drains.
const MAX_PARALLEL_ACTIONS: usize = 64;

/// Who acts, and where: this replica's name in the Events it writes, and where node jobs run.
#[derive(Clone, Debug, Default)]
pub struct Acting {
    pub instance: String,
    pub jobs: JobsPlace,
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
    let Acting { instance, jobs } = acting;
    let jobs = Arc::new(jobs);
    let records: Api<HealingAction> = Api::all(client.clone());
    let reporter = Reporter {
        controller: "kube-healer".into(),
        instance: Some(instance),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // An eviction may wait minutes on a PodDisruptionBudget: actions run side by side, bounded,
    // in two lanes. The receive loop itself never waits: each request waits for its lane's slot
    // in a task of its own, and reverts, record deletions and avoid-taint removals do not queue.
    let quick = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    let long = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    while let Some(work) = rx.recv().await {
        // Work is the leader's: a replica that lost the leadership takes none (the next leader
        // decides afresh), and answers each request so that its budget stays right.
        if !leading.now() {
            if let Work::Act(req) = work {
                tracing::info!(record = %req.name, "not leading: the decision is dropped, the next leader decides afresh");
                let _ = done.send(ActionDone {
                    policy: req.spec.policy.clone(),
                    name: req.name.clone(),
                    was_in_flight: req.in_flight(),
                    carried_out: false,
                    unrecorded: None,
                });
            }
            continue;
        }
        let req = match work {
            Work::Act(req) => *req,
            Work::Revert { policy, node } => {
                let (client, recorder) = (client.clone(), recorder.clone());
                tokio::spawn(async move { node::revert(&client, &recorder, &policy, &node).await });
                continue;
            }
            Work::DeleteRecord { name } => {
                let records = records.clone();
                tokio::spawn(async move { writer::delete(&records, &name).await });
                continue;
            }
            Work::Unavoid { node } => {
                let (client, now) = (client.clone(), clock.now());
                tokio::spawn(async move { node::remove_expired_avoid(&client, &node, now).await });
                continue;
            }
        };
        let lane = if takes_long(req.spec.action) {
            &long
        } else {
            &quick
        };
        let lane = lane.clone();
        let (client, records, recorder, done, metrics, clock, jobs, leading) = (
            client.clone(),
            records.clone(),
            recorder.clone(),
            done.clone(),
            metrics.clone(),
            clock.clone(),
            jobs.clone(),
            leading.clone(),
        );
        tokio::spawn(async move {
            let Ok(permit) = lane.acquire_owned().await else {
                return;
            };
            let (policy, name) = (req.spec.policy.clone(), req.name.clone());
            let was_in_flight = req.in_flight();
            let io = Io {
                client: &client,
                records: &records,
                recorder: &recorder,
                metrics: &metrics,
                clock: clock.as_ref(),
                jobs: &jobs,
                leading: &leading,
            };
            let handled = handle(io, req).await;
            let _ = done.send(ActionDone {
                policy,
                name,
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

#[cfg(test)]
mod tests {
    use kube_healer_api::{ActionKind, FailureClass, HealingActionSpec, TargetKind, TargetRef};

    use super::*;
    use crate::act::pod::{EvictError, evict};
    use crate::clock::ManualClock;
    use crate::protocol::ActionRequest;

    /// A client for an address nobody listens on: any call would fail, so a test that passes
    /// made none.
    fn nowhere() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        Client::try_from(config).expect("a client")
    }

    fn request() -> ActionRequest {
        ActionRequest {
            name: "p-0".into(),
            spec: HealingActionSpec {
                policy: "p".into(),
                policy_generation: None,
                target: TargetRef::new(TargetKind::Pod, Some("ns"), "x", "u", None),
                class: FailureClass::Evicted,
                action: ActionKind::Delete,
                step: 1,
                dry_run: false,
                failing_since: None,
                decided_at: ManualClock::at(0).time(),
                evidence: Default::default(),
            },
            step: serde_json::from_value(serde_json::json!({"action": "Delete"})).expect("a step"),
            hold: None,
            owner: None,
            cooldown: std::time::Duration::from_secs(60),
            protected_namespaces: Vec::new().into(),
            seen: None,
            before: None,
            due_ms: None,
        }
    }

    /// A replica that lost the leadership takes no new work, and answers it (its budget stays
    /// right); an eviction stops before its next call.
    #[tokio::test]
    async fn a_replica_that_does_not_lead_makes_no_call() {
        let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let executor = tokio::spawn(executor(
            nowhere(),
            work_rx,
            done_tx,
            Arc::new(Metrics::default()),
            Acting::default(),
            Arc::new(ManualClock::at(0)),
            Leading::new(leader_rx.clone()),
        ));
        work_tx
            .send(Work::Act(Box::new(request())))
            .expect("the executor runs");
        let done = done_rx.recv().await.expect("an answer");
        assert!(
            done.was_in_flight && !done.carried_out && done.unrecorded.is_none(),
            "{done:?}"
        );
        drop(work_tx);
        executor.await.expect("the executor ends");

        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(nowhere(), "ns");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let (result, calls) = evict(&pods, "x", "u", None, deadline, &Leading::new(leader_rx)).await;
        assert!(matches!(result, Err(EvictError::Stopped)), "{result:?}");
        assert_eq!(calls, 0);
        drop(leader_tx);
    }

    /// A server on 127.0.0.1 that accepts every connection, reads the request, and never
    /// answers: every call to it hangs. Returns a client for it and the request lines it read.
    async fn silent() -> (Client, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = loop {
                        if socket.readable().await.is_err() {
                            return;
                        }
                        match socket.try_read(&mut buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(_) => return,
                        }
                    };
                    if let Some(line) = String::from_utf8_lossy(&buf[..n]).lines().next() {
                        seen.lock().expect("the lines").push(line.to_string());
                    }
                    std::future::pending::<()>().await;
                    drop(socket);
                });
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
        (Client::try_from(config).expect("a client"), lines)
    }

    /// Quick work goes out while every long slot is taken and more long work waits: the receive
    /// loop never waits for a slot, and the lanes are apart.
    #[tokio::test]
    async fn quick_work_does_not_wait_behind_long_actions() {
        let (client, lines) = silent().await;
        let (_leader_tx, leader_rx) = tokio::sync::watch::channel(true);
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let (done_tx, _done_rx) = mpsc::unbounded_channel();
        tokio::spawn(executor(
            client,
            work_rx,
            done_tx,
            Arc::new(Metrics::default()),
            Acting::default(),
            Arc::new(ManualClock::at(0)),
            Leading::new(leader_rx),
        ));
        // One more eviction than there are long slots: each hangs writing its record.
        for i in 0..=MAX_PARALLEL_ACTIONS {
            let mut req = request();
            req.name = format!("evict-{i}");
            req.spec.action = ActionKind::Evict;
            req.step = serde_json::from_value(serde_json::json!({"action": "Evict"})).expect("a step");
            work_tx.send(Work::Act(Box::new(req))).expect("the executor runs");
        }
        let mut delete = request();
        delete.name = "delete-0".into();
        work_tx
            .send(Work::Act(Box::new(delete)))
            .expect("the executor runs");
        work_tx
            .send(Work::DeleteRecord {
                name: "old-record".into(),
            })
            .expect("the executor runs");
        let count = |method: &str| {
            let lines = lines.lock().expect("the lines");
            lines.iter().filter(|l| l.starts_with(method)).count()
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while (count("POST") < MAX_PARALLEL_ACTIONS + 1 || count("DELETE") < 1)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            (count("POST"), count("DELETE")),
            (MAX_PARALLEL_ACTIONS + 1, 1),
            "64 evictions and the deletion record their decisions, the record deletion is sent; the 65th eviction waits"
        );
    }
}
