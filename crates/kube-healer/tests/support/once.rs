//! Healing done once: leaders among replicas, a stream of failing pods, and the check that each
//! was healed by exactly one recorded decision and one successful API call (the API server's
//! audit log counts the calls).

use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_testenv::harness::Ctx;
use serde_json::json;

use super::Operator;

/// A replica electing its leader on the chart's Lease, deciding on the test's policies only.
pub async fn replica(ctx: &Ctx, identity: String) -> anyhow::Result<Operator> {
    let selector = super::selector(ctx);
    let args = [
        "--leader-election-namespace",
        super::CHART_NAMESPACE,
        "--policy-selector",
        &selector,
        "--identity",
        &identity,
    ];
    Operator::start(&ctx.cluster, &identity, &args).await
}

/// The longest a follower may take to lead once the leader was SIGKILLed, from the election's
/// own settings (see `LeaderElection::takeover_bound`), plus the 100 ms this side polls at.
pub fn takeover_limit() -> Duration {
    kube_healer_operator::leader::LeaderElection::new("", "").takeover_bound() + Duration::from_millis(100)
}

/// What a test of several replicas saw, in order, with the seconds since it started: which
/// replica led when, what the test did to them, and how long each takeover took. A failure
/// prints it, so that a CI log tells a slow takeover from a lost or repeated action.
pub struct Story {
    start: Instant,
    lines: std::sync::Mutex<Vec<String>>,
}

impl Default for Story {
    fn default() -> Self {
        Story {
            start: Instant::now(),
            lines: Default::default(),
        }
    }
}

impl Story {
    pub fn say(&self, what: impl std::fmt::Display) {
        let line = format!("{:7.1} s  {what}", self.start.elapsed().as_secs_f64());
        self.lines.lock().expect("story lock").push(line);
    }

    pub fn told(&self) -> String {
        self.lines.lock().expect("story lock").join("\n")
    }
}

/// Which of the replicas lead, by the kube_healer_leader metric.
pub async fn leaders(ops: &[&Operator]) -> anyhow::Result<Vec<bool>> {
    let mut out = Vec::new();
    for op in ops {
        out.push(op.metric("kube_healer_leader").await?.unwrap_or(0.0) == 1.0);
    }
    Ok(out)
}

/// When the replica last stepped down because its Lease could not be renewed, by the timestamp
/// of its own log line: the moment it stopped deciding, not when a poll of its metric saw it.
pub fn stepped_down_at(op: &Operator) -> Option<k8s_openapi::jiff::Timestamp> {
    op.log()
        .lines()
        .rev()
        .filter(|l| l.contains("cannot be read or renewed: stepping down"))
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
}

/// When the Lease `name` in `namespace` expires: its last renewal plus its duration.
pub async fn lease_expiry(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> anyhow::Result<k8s_openapi::jiff::Timestamp> {
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(ctx.client.clone(), namespace)
        .get(name)
        .await?;
    let spec = lease.spec.unwrap_or_default();
    let renewed = spec.renew_time.map(|t| t.0).context("the Lease's renewTime")?;
    let seconds = spec.lease_duration_seconds.context("the Lease's duration")?;
    Ok(renewed + k8s_openapi::jiff::SignedDuration::from_secs(seconds.into()))
}

/// Waits until exactly one of the replicas leads; returns its index. Every change of leadership
/// seen meanwhile is told in `story`.
pub async fn single_leader(ops: &[&Operator], within: Duration, story: &Story) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    let mut seen: Option<Vec<bool>> = None;
    loop {
        let l = leaders(ops).await?;
        if seen.as_ref() != Some(&l) {
            story.say(format!("leading: {}", leading_names(ops, &l)));
            seen = Some(l.clone());
        }
        if l.iter().filter(|x| **x).count() == 1 {
            return Ok(l.iter().position(|x| *x).unwrap_or(0));
        }
        if Instant::now() > deadline {
            bail!("no single leader within {within:?}: {}", leading_names(ops, &l));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leading_names(ops: &[&Operator], leading: &[bool]) -> String {
    let names: Vec<&str> = ops
        .iter()
        .zip(leading)
        .filter(|(_, l)| **l)
        .map(|(op, _)| op.name())
        .collect();
    let all: Vec<&str> = ops.iter().map(|op| op.name()).collect();
    format!("{names:?} of {all:?}")
}

/// A policy deleting Evicted pods in `ns`, fast and with room for every pod.
pub async fn delete_evicted_policy(ctx: &Ctx, name: &str, ns: &str) -> anyhow::Result<()> {
    super::create_policy(
        ctx,
        name,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
            "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 2, "rate": {"actions": 1000, "per": "1m"}, "maxAttempts": 1}}),
    )
    .await
}

/// Evicted pods `<prefix>-NN`, one every `every`.
pub async fn evicted_pods(
    ctx: Ctx,
    ns: String,
    node: String,
    prefix: &str,
    count: usize,
    every: Duration,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for i in 0..count {
        let name = format!("{prefix}-{i:02}");
        pods.create(
            &PostParams::default(),
            &kube_healer_testenv::scenario_pod(
                &ns,
                &name,
                Some(&node),
                &kube_healer_testenv::Scenario::evicted(),
            ),
        )
        .await?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// The user the operator's calls are made as in these tests (impersonated by the admin).
const OPERATOR: &str = "system:serviceaccount:kube-healer:kube-healer";

/// Every pod of `prefix` is gone, with exactly one record claiming its removal (Succeeded) and
/// exactly one delete the API server answered 200 (others, if any, found it gone); any other
/// record of it says another record removed it.
/// On failure, the ledger of every pod: whether it is still there, its decisions and the records
/// holding them, and the API server's answers to the operator's deletes of it.
pub async fn each_healed_once(
    ctx: &Ctx,
    policy: &str,
    ns: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let gone =
        kube_healer_testenv::wait::until("every failing pod deleted", Duration::from_secs(120), || async {
            let left = pods.list_metadata(&Default::default()).await?.items.len();
            Ok((left == 0).then_some(()))
        })
        .await;
    // Removals decided together share a batch record: each pod is counted with its own outcome.
    let recs = match gone {
        Ok(()) => super::records::records_naming(ctx, policy, count).await,
        Err(e) => Err(e.into()),
    };
    let (recs, waited) = match recs {
        Ok(recs) => (recs, None),
        Err(e) => (policy_records(ctx, policy).await.unwrap_or_default(), Some(e)),
    };
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:02}")).collect();
    let ledger = Ledger::read(ctx, &recs, ns, &names).await?;
    let mut wrong = ledger.wrong();
    let named: usize = ledger.decided.values().map(Vec::len).sum();
    if named < count {
        wrong.push(format!("{named} decisions recorded for {count} pods"));
    }
    if let Some(e) = waited {
        wrong.insert(0, format!("{e:#}"));
    }
    ensure!(
        wrong.is_empty(),
        "{}\nwhat each pod came to:\n{}",
        wrong.join("\n"),
        ledger.table(&names)
    );
    let extra_calls: usize = ledger.deletes.values().map(|a| a.len().saturating_sub(1)).sum();
    Ok(format!(
        "{count} pods, {} records, {count} successful deletes, {extra_calls} repeated delete calls that found the pod gone, {} decisions of a killed leader yielded to another record, {} deletes cut off by a kill (finished by the next leader)",
        recs.len(),
        named - count,
        ledger.cut_offs()
    ))
}

/// The policy's records as they are now, without waiting.
async fn policy_records(ctx: &Ctx, policy: &str) -> anyhow::Result<Vec<HealingAction>> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    Ok(api.list(&lp).await?.items)
}

/// What each pod came to: still there or not, its final outcomes, the records naming it, and the
/// API server's answers to the operator's deletes (429 and 5xx, retried by design, left out).
struct Ledger {
    left: BTreeSet<String>,
    decided: BTreeMap<String, Vec<String>>,
    recorded_in: BTreeMap<String, Vec<String>>,
    deletes: BTreeMap<String, Vec<u16>>,
    /// What the records say of the pod (their messages), and every request on it in the audit
    /// log, by anyone: shown for the pods something is wrong with, to tell who removed it.
    said: BTreeMap<String, Vec<String>>,
    trail: BTreeMap<String, Vec<String>>,
}

impl Ledger {
    async fn read(ctx: &Ctx, recs: &[HealingAction], ns: &str, names: &[String]) -> anyhow::Result<Self> {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let left = pods
            .list_metadata(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let mut recorded_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in recs {
            let record = r.metadata.name.clone().unwrap_or_default();
            let targets = if r.spec.members.is_empty() {
                vec![r.spec.target.name.clone()]
            } else {
                r.spec.members.iter().map(|m| m.target.name.clone()).collect()
            };
            for t in targets {
                recorded_in.entry(t).or_default().push(record.clone());
            }
        }
        let mut deletes = BTreeMap::new();
        for name in names {
            let answers = ctx.cluster.operator_requests("delete", "pods", ns, name)?;
            deletes.insert(name.clone(), super::answered(answers));
        }
        Ok(Ledger {
            left,
            decided: super::records::outcomes_by_pod(recs),
            recorded_in,
            deletes,
            said: messages(recs),
            trail: trail(ctx, ns, names)?,
        })
    }

    /// What is wrong, a line per pod: not exactly one record claiming its removal (Succeeded),
    /// another record saying anything but that another removed it, or not one delete answered
    /// 200. A leader killed after recording its decision and before its call leaves a record the
    /// next leader may not resume (it decided the pod again, with others, into a batch): that
    /// record is finished Skipped/TargetGone naming the one that removed the pod.
    fn wrong(&self) -> Vec<String> {
        let mut wrong = Vec::new();
        for (name, answers) in &self.deletes {
            let decided = self.decided.get(name).cloned().unwrap_or_default();
            let claimed = decided.iter().filter(|d| *d == "Succeeded/Completed").count();
            let yielded = decided.iter().filter(|d| *d == "Skipped/TargetGone").count();
            // Each record that yielded says to which record.
            let said = self
                .said
                .get(name)
                .map_or(0, |s| s.iter().filter(|m| m.contains("decided it again")).count());
            if claimed != 1 || claimed + yielded != decided.len() || said < yielded {
                wrong.push(format!(
                    "{name}: decisions recorded {decided:?} (one Succeeded expected, and any other Skipped/TargetGone naming the record that removed it)"
                ));
            }
            let deleted = answers.iter().filter(|c| **c == 200).count();
            if deleted != 1 && !(deleted == 0 && self.cut_off(name)) {
                wrong.push(format!(
                    "{name}: the API server answered the operator's deletes with {answers:?}"
                ));
            }
        }
        wrong
    }

    /// A removal whose DELETE was on its way when its leader was killed: the pod is gone, no
    /// delete of it by the operator was answered but with 5xx, and exactly one record claims it,
    /// finished by the next leader, which found the pod gone. A call whose client died under it
    /// is logged as 504 (the API server's answer to a cancelled request, which may still have
    /// taken effect), or not at all; both seen in CI under load. kwok's own delete, which ends a
    /// pod the operator's call marked for deletion, is logged under the admin's name and is not
    /// the operator's.
    fn cut_off(&self, name: &str) -> bool {
        let trail = self.trail.get(name).cloned().unwrap_or_default();
        let said = self.said.get(name).cloned().unwrap_or_default();
        let operator_delete = format!("{OPERATOR} delete pods ->");
        let confirmed = |t: &String| {
            t.split_once(&operator_delete)
                .is_some_and(|(_, code)| !code.trim().starts_with('5'))
        };
        !self.left.contains(name)
            && !trail.iter().any(confirmed)
            && said
                .iter()
                .any(|m| m.contains("before the process that decided it ended took effect"))
    }

    /// The pods whose removal was cut off by a kill (see `cut_off`).
    fn cut_offs(&self) -> usize {
        self.deletes
            .iter()
            .filter(|(name, answers)| answers.is_empty() && self.cut_off(name))
            .count()
    }

    fn table(&self, names: &[String]) -> String {
        let wrong = self.wrong().join("\n");
        let rows: Vec<String> = names
            .iter()
            .map(|name| {
                let row = format!(
                    "  {name}: {} | decided {:?} in {:?} | deletes answered {:?}",
                    if self.left.contains(name) {
                        "still there"
                    } else {
                        "gone"
                    },
                    self.decided.get(name).cloned().unwrap_or_default(),
                    self.recorded_in.get(name).cloned().unwrap_or_default(),
                    self.deletes.get(name).cloned().unwrap_or_default(),
                );
                if !wrong.contains(&format!("{name}:")) {
                    return row;
                }
                let said = self.said.get(name).cloned().unwrap_or_default();
                let trail = self.trail.get(name).cloned().unwrap_or_default();
                format!("{row}\n    records say: {said:#?}\n    requests on it: {trail:#?}")
            })
            .collect();
        rows.join("\n")
    }
}

/// Each pod's outcome messages in the records (a batch's per member).
fn messages(recs: &[HealingAction]) -> BTreeMap<String, Vec<String>> {
    let mut said: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in recs {
        let record = r.metadata.name.clone().unwrap_or_default();
        let Some(status) = r.status.as_ref() else {
            continue;
        };
        if r.spec.members.is_empty() {
            let message = status.message.clone().unwrap_or_default();
            said.entry(r.spec.target.name.clone())
                .or_default()
                .push(format!("{record}: {message}"));
        }
        for m in &r.spec.members {
            let outcome = status.members.iter().find(|o| o.uid == m.target.uid);
            let message = outcome
                .and_then(|o| o.message.clone())
                .unwrap_or_else(|| "(removed)".into());
            said.entry(m.target.name.clone())
                .or_default()
                .push(format!("{record}: {message}"));
        }
    }
    said
}

/// Every request on each pod in the audit log, by anyone: time, user, verb, answer.
fn trail(ctx: &Ctx, ns: &str, names: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut trail: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in ctx.cluster.audit_events()? {
        let o = &e["objectRef"];
        let name = o["name"].as_str().unwrap_or_default();
        if o["resource"] != "pods" || o["namespace"] != ns || !names.iter().any(|n| n == name) {
            continue;
        }
        let user = e["impersonatedUser"]["username"]
            .as_str()
            .or(e["user"]["username"].as_str());
        trail.entry(name.to_string()).or_default().push(format!(
            "{} {} {} {}{} -> {}",
            e["requestReceivedTimestamp"].as_str().unwrap_or_default(),
            user.unwrap_or_default(),
            e["verb"].as_str().unwrap_or_default(),
            o["resource"].as_str().unwrap_or_default(),
            o["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default(),
            e["responseStatus"]["code"]
        ));
    }
    Ok(trail)
}
