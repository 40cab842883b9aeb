//! One request from decision to record: recorded before the API call, finished after it. A
//! decision recorded once is never carried out again; one left unfinished by a process that
//! ended is finished now (every action is safe to repeat: UID preconditions, the node's own
//! state, deterministic Job names, one restart per workload and cooldown).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::Recorder;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingAction, reasons};
use kube_healer_core::decide::{Fresh, checked_by_version};

use crate::act::Outcome;
use crate::act::announce::announce;
use crate::act::dispatch::{carry_out, longest, removal_grace};
use crate::act::job::JobsPlace;
use crate::act::pod;
use crate::act::recheck::recheck;
use crate::clock::Clock;
use crate::failpoint;
use crate::metrics::Metrics;
use crate::protocol::{ActionRequest, Leading, Maintained};
use crate::record::writer::{self, Begun, Finished};

/// What came of handling a request.
pub enum Handled {
    /// Recorded and carried out: the cluster was changed.
    CarriedOut,
    /// Recorded; held, dry run, failed, or recorded before.
    NotCarriedOut,
    /// Recorded, and the target certainly left as it was (see `Outcome::untouched`): a removal
    /// it would have been counts no more against its workload's limit.
    Untouched,
    /// Not recorded, so not carried out: the request, to be taken back.
    Unrecorded(Box<ActionRequest>),
}

/// What the executor lends each request.
pub struct Io<'a> {
    pub client: &'a Client,
    pub records: &'a Api<HealingAction>,
    pub recorder: &'a Recorder,
    pub metrics: &'a Metrics,
    pub clock: &'a dyn Clock,
    pub jobs: &'a JobsPlace,
    pub leading: &'a Leading,
    pub maintained: &'a Maintained,
}

pub async fn handle(io: Io<'_>, req: ActionRequest) -> Handled {
    // A long action's record carries until when it may run: a leader that takes over meanwhile
    // counts it in flight.
    let in_flight_until = longest(&req)
        .filter(|_| req.in_flight())
        .map(|d| io.clock.now() + d.as_secs() as i64);
    let (req, resumed) = match begin(&io, req, in_flight_until).await {
        Ok(begun) => begun,
        Err(handled) => return handled,
    };
    failpoint::abort("after-record");
    if !io.leading.now() {
        // Recorded, not carried out: the record stays unfinished, and the next leader, deciding
        // the same failure, finds it and finishes it.
        tracing::warn!(record = %req.name, "leadership lost before the call: left for the next leader");
        return Handled::NotCarriedOut;
    }
    let start = io.clock.time();
    if skipped(&io, &req, &start).await {
        return Handled::NotCarriedOut;
    }
    let outcome = act_on(&io, &req, resumed, &start).await;
    failpoint::abort("after-call");
    let marked = in_flight_until.is_some() || resumed && longest(&req).is_some();
    finish(&io, &req, outcome, start, (marked, resumed)).await
}

/// The record written (or found): the request back with whether it resumes a record left
/// unfinished; or how it was handled when it must not go on.
async fn begin(
    io: &Io<'_>,
    req: ActionRequest,
    in_flight_until: Option<i64>,
) -> Result<(ActionRequest, bool), Handled> {
    let hold = req.hold.is_some();
    match writer::begin(io.records, &req.name, &req.spec, hold, in_flight_until).await {
        Begun::New => Ok((req, false)),
        Begun::Resumed => {
            tracing::warn!(record = %req.name, "decision recorded but not finished before a restart: finishing it");
            Ok((req, true))
        }
        Begun::Done => {
            tracing::info!(record = %req.name, "decision already recorded: not carried out again");
            Err(Handled::NotCarriedOut)
        }
        Begun::Failed(e) => {
            io.metrics.records_unwritten.inc();
            tracing::warn!(record = %req.name, error = %e, "recording the decision failed: not acting now, deciding again later");
            Err(Handled::Unrecorded(Box::new(req)))
        }
    }
}

/// Held back, or a dry run: recorded as Skipped, nothing changed. Whether it was.
async fn skipped(io: &Io<'_>, req: &ActionRequest, start: &Time) -> bool {
    let target = &req.spec.target;
    let skipped = match req.hold.clone() {
        Some(hold) => Some((hold.reason.as_str(), hold.message)),
        None if req.spec.dry_run => Some((
            reasons::DRY_RUN,
            format!("dry run: would {} {}", req.spec.action, target.reference),
        )),
        None => None,
    };
    let Some((reason, message)) = skipped else {
        return false;
    };
    tracing::info!(record = %req.name, target = %target.reference, reason, %message, "not carried out");
    writer::skipped(io.records, &req.name, reason, &message, start.clone()).await;
    count(io.metrics, req, ActionPhase::Skipped, reason);
    announce(io.recorder, &req.spec, ActionPhase::Skipped, reason, &message).await;
    true
}

/// The outcome recorded, counted and announced; `marked`: the record carries an in-flight mark
/// to take off once it ended; `resumed`: it finishes a record an earlier process began, whose
/// call may have been made already (a pod it deleted, still terminating, rechecks as
/// recovered): never known untouched.
async fn finish(
    io: &Io<'_>,
    req: &ActionRequest,
    outcome: Outcome,
    start: Time,
    (marked, resumed): (bool, bool),
) -> Handled {
    let untouched = !resumed && outcome.untouched();
    let Outcome {
        phase,
        reason,
        message,
        calls,
    } = outcome;
    tracing::info!(record = %req.name, target = %req.spec.target.reference, action = %req.spec.action, ?phase, reason, %message, "action finished");
    let finished = Finished {
        phase,
        reason,
        message: message.clone(),
        calls,
        start,
        finish: io.clock.time(),
    };
    writer::finish(io.records, &req.name, finished).await;
    // Ended (not left for the next leader): the in-flight mark comes off (a resumed record may
    // carry the mark of the leader that began it), and a removal certainly not made stops
    // naming its workload, for every process that counts removals from the records.
    let untouched = untouched && crate::record::disrupts(&req.spec, false).is_some();
    if phase != ActionPhase::Running && (marked || untouched) {
        writer::settle(io.records, &req.name, (marked, untouched)).await;
    }
    count(io.metrics, req, phase, reason);
    // A leftover (a pod that had stopped for good) cleaned away needs no Event: its record tells
    // the story, and a bulk clean-up would write one Event per pod. Everything else is
    // announced on the target.
    let leftover_removed = phase == ActionPhase::Succeeded
        && req.spec.action.properties().removes_target
        && req.spec.class.properties().stopped_for_good;
    if !leftover_removed {
        announce(io.recorder, &req.spec, phase, reason, &message).await;
    }
    match phase {
        ActionPhase::Succeeded => Handled::CarriedOut,
        _ if untouched => Handled::Untouched,
        _ => Handled::NotCarriedOut,
    }
}

/// A recorded live decision carried out: read afresh right before the call (the failure must
/// still hold), then the call. Shared by a record of one and a batch's members.
pub(crate) async fn act_on(io: &Io<'_>, req: &ActionRequest, resumed: bool, start: &Time) -> Outcome {
    observe_latency(io, req);
    failpoint::pause("before-recheck").await;
    // A dead pod's removal carries the version decided on as its precondition: the API server's
    // check stands for the read and recheck (core's `checked_by_version`), at half the calls.
    // Refused (the pod changed since), the read and recheck run as for any other action.
    let mut refused_calls = 0;
    let version = req
        .seen
        .as_deref()
        .and_then(|s| checked_by_version(s, req.spec.action));
    if let Some(version) = version {
        match pod::delete_at_version(io.client, &req.spec, removal_grace(req), version).await {
            Ok(outcome) => return resumed_gone(outcome, req, resumed),
            Err(calls) => refused_calls = calls,
        }
    }
    let mut outcome = recheck_then_call(io, req, resumed, start).await;
    outcome.calls += refused_calls;
    outcome
}

/// The target read afresh and rechecked, then the call if the failure still holds.
async fn recheck_then_call(io: &Io<'_>, req: &ActionRequest, resumed: bool, start: &Time) -> Outcome {
    let skipped = |reason, message| Some(Outcome::new(ActionPhase::Skipped, reason, message, 0));
    let rechecked = match recheck(io.client, io.maintained, req, io.clock.now()).await {
        Ok(Fresh::Holds) => None,
        Ok(Fresh::Cleared(why)) => skipped(reasons::RECOVERED, format!("not carried out: {why}")),
        Ok(Fresh::Unsafe(why)) => skipped(reasons::UNSAFE, format!("not carried out: {why}")),
        Ok(Fresh::OptedOut(why)) => skipped(reasons::OPTED_OUT, format!("not carried out: {why}")),
        Ok(Fresh::Maintenance(why)) => skipped(reasons::MAINTENANCE, format!("not carried out: {why}")),
        Ok(Fresh::Overridden(why)) => skipped(reasons::OVERRIDDEN, format!("not carried out: {why}")),
        Ok(Fresh::BudgetExceeded(why)) => skipped(
            reasons::BUDGET_EXCEEDED,
            format!("not carried out: counted on the nodes read afresh, {why}"),
        ),
        // Finishing a decision of a process that ended: its call may have been made already.
        Ok(Fresh::Gone(how)) if resumed && req.spec.action.properties().removes_target => Some(Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("{how}: the call made before the restart took effect, or it was removed since"),
            0,
        )),
        Ok(Fresh::Gone(how)) => skipped(reasons::TARGET_GONE, format!("not carried out: {how}")),
        Err((e, calls)) => Some(Outcome::new(
            ActionPhase::Failed,
            reasons::API_ERROR,
            format!("not carried out: the recheck right before the call could not read the target: {e}"),
            calls,
        )),
    };
    match rechecked {
        Some(outcome) => outcome,
        // Leadership is asked again after the recheck's reads, right before the call: a
        // replica that lost it while reading leaves the decision to the next leader (its
        // record stays unfinished, and is taken up there).
        None if !io.leading.now() => Outcome::new(
            ActionPhase::Running,
            reasons::LEADERSHIP_LOST,
            "not carried out: this replica lost the leadership while rechecking; the next leader takes it up"
                .to_string(),
            0,
        ),
        None => call(io, req, resumed, start).await,
    }
}

/// The action's call(s), with the record marked Running meanwhile for long ones.
async fn call(io: &Io<'_>, req: &ActionRequest, resumed: bool, start: &Time) -> Outcome {
    // An action that takes long (an eviction waiting on a PodDisruptionBudget, a drain, a
    // Job) shows Running meanwhile; the call does not wait for that write, and the final phase is
    // written after both. One-call actions skip it: a record without a final phase is finished
    // after a crash either way, and in a bulk clean-up every write to the API server counts.
    let running = async {
        if req.spec.action.properties().takes_long {
            writer::running(io.records, &req.name, start.clone()).await;
        }
    };
    let ((), outcome) = tokio::join!(running, carry_out(io.client, req, io.clock, io.jobs, io.leading));
    resumed_gone(outcome, req, resumed)
}

/// Finishing a decision of a process that ended: its call may have been made already, so a
/// removal that finds its target gone met its aim.
fn resumed_gone(outcome: Outcome, req: &ActionRequest, resumed: bool) -> Outcome {
    match outcome {
        Outcome {
            phase: ActionPhase::Failed | ActionPhase::Skipped,
            reason: reasons::TARGET_GONE,
            calls,
            ..
        } if resumed && req.spec.action.properties().removes_target => Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!(
                "{} is gone: the call made before the restart took effect, or it was removed since",
                req.spec.target.reference
            ),
            calls,
        ),
        outcome => outcome,
    }
}

pub(crate) fn count(metrics: &Metrics, req: &ActionRequest, phase: ActionPhase, reason: &str) {
    metrics
        .actions
        .get_or_create(&Metrics::action(req.spec.action, phase, reason))
        .inc();
}

/// Seconds from the decision to its call, and (for a ladder's first step) from the moment the
/// failure was due to the call: the reaction time.
fn observe_latency(io: &Io<'_>, req: &ActionRequest) {
    let calling_ms = io.clock.now_ms();
    let decided_ms = req.spec.decided_at.0.as_millisecond();
    let since_decided = (calling_ms - decided_ms) as f64 / 1000.0;
    io.metrics.decision_latency.observe(since_decided.max(0.0));
    if let Some(due) = req.due_ms {
        let since_due = (calling_ms - due) as f64 / 1000.0;
        io.metrics.due_latency.observe(since_due.max(0.0));
    }
}
