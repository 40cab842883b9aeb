//! The executor's lanes and its leadership check, on clients that cannot answer.
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
            members: Vec::new(),
            cause: None,
        },
        step: serde_json::from_value(serde_json::json!({"action": "Delete"})).expect("a step"),
        hold: None,
        owner: None,
        cooldown: std::time::Duration::from_secs(60),
        protected_namespaces: Vec::new().into(),
        seen: None,
        before: None,
        due_ms: None,
        takes_up: Default::default(),
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

/// Decisions made again after a process ended are grouped with what made them before: those a
/// batch cut short named, only with each other; one that had a record of its own, alone.
#[test]
fn a_decision_made_again_batches_only_with_what_it_takes_up() {
    use crate::protocol::TakesUp;
    let new = request();
    let mut named = request();
    named.takes_up = TakesUp::Batch("b".into());
    let mut named_too = request();
    named_too.name = "p-1".into();
    named_too.takes_up = TakesUp::Batch("b".into());
    let mut own = request();
    own.takes_up = TakesUp::Own;
    assert!(batch::key(&new).is_some());
    assert_ne!(batch::key(&new), batch::key(&named));
    assert_eq!(batch::key(&named), batch::key(&named_too));
    assert_eq!(batch::key(&own), None);
}
