//! `kube-healer release node/NAME --reason TEXT`: a person lets go, on purpose, of what
//! kube-healer holds a node with (its cordon and taints, whether their policy still exists or
//! not). kube-healer lifts its marks only on evidence that the node recovered; this is the way
//! out when a person knows better. Each policy's release is recorded as a HealingAction before
//! it is made (Succeeded/Released, naming the reason, once made), and counts as a person's lift:
//! a policy still there does not cordon or taint the node again for that failure, nor within
//! its cooldown. Remediations and replacements handed to other tools are theirs to end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube_healer_api::record::{ActionPhase, Evidence, TargetRef};
use kube_healer_api::{
    ActionKind, FailureClass, HealingAction, HealingActionSpec, HealingPolicy, POLICY_LABEL,
    TARGET_UID_LABEL, TargetKind, reasons,
};
use kube_healer_operator::act::node::{release_patch, released_policies, update_node};
use kube_healer_operator::record::writer::{self, Begun, Finished};
use kube_healer_operator::record::{Mode, label_value, record_name};

#[derive(clap::Args)]
pub struct Args {
    /// node/NAME (or NAME).
    target: String,
    /// Why: recorded on each release.
    #[arg(long)]
    reason: String,
    /// Only this policy's marks (default: every policy's).
    #[arg(long)]
    policy: Option<String>,
    /// Say what would be released; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Kubeconfig to use; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let node = match args.target.split_once('/') {
        Some((kind, name)) if kind.eq_ignore_ascii_case("node") && !name.is_empty() => name.to_string(),
        None if !args.target.is_empty() => args.target.clone(),
        _ => bail!("{:?}: expected node/NAME", args.target),
    };
    if args.reason.trim().is_empty() {
        bail!("--reason: say why the node is released (it is recorded)");
    }
    tokio::runtime::Runtime::new()?.block_on(release(node, args))
}

async fn release(name: String, args: Args) -> anyhow::Result<ExitCode> {
    let client = crate::cmd::client(args.kubeconfig.as_deref()).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(&name).await.with_context(|| format!("node/{name}"))?;
    let held = released_policies(&node);
    let policies: Vec<String> = match &args.policy {
        Some(only) if !held.contains(only) => {
            bail!("node/{name}: policy {only} holds nothing on it (held by: {held:?})")
        }
        Some(only) => vec![only.clone()],
        None => held,
    };
    if policies.is_empty() {
        println!("node/{name}: nothing of kube-healer's to release");
        return Ok(ExitCode::SUCCESS);
    }
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let reason = args.reason.trim();
    for policy in policies {
        let now = Timestamp::now();
        if args.dry_run {
            let said = release_patch(&node, &policy, now.as_second())
                .map(|(_, s)| s)
                .unwrap_or_default();
            println!("node/{name}: {policy}: would release ({said})");
            continue;
        }
        // Recorded first: a release the API server will not record is not made.
        let record = Released::describe(&client, (&policy, &name, &uid)).await?;
        record.begin(&client).await?;
        let done = update_node(&client, &name, Some(&uid), |n| {
            release_patch(n, &policy, now.as_second())
        })
        .await;
        let (outcome, said) = match done {
            Ok(Some(undone)) => {
                let message = format!("released by hand (kube-healer release): {reason}: {undone}");
                ((ActionPhase::Succeeded, reasons::RELEASED, message), undone)
            }
            Ok(None) => {
                let message = format!("nothing of {policy}'s left on the node to release ({reason})");
                (
                    (ActionPhase::Skipped, reasons::TARGET_GONE, message),
                    "nothing left to release".into(),
                )
            }
            Err(e) => {
                let message = format!("releasing failed: {e}");
                record
                    .finish(&client, (ActionPhase::Failed, reasons::API_ERROR, message), now)
                    .await;
                return Err(e).with_context(|| format!("releasing node/{name} from {policy}"));
            }
        };
        record.finish(&client, outcome, now).await;
        println!("node/{name}: {policy}: {said} (recorded as {})", record.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// The record of one policy's release.
struct Released {
    name: String,
    spec: HealingActionSpec,
}

impl Released {
    /// The record, naming the failure the policy held the node for: its latest record's, or
    /// the policy's first condition's when its records are gone.
    async fn describe(
        client: &kube::Client,
        (policy, node, uid): (&str, &str, &str),
    ) -> anyhow::Result<Released> {
        let records: Api<HealingAction> = Api::all(client.clone());
        let selector = format!(
            "{POLICY_LABEL}={},{TARGET_UID_LABEL}={}",
            label_value(policy),
            label_value(uid)
        );
        let latest = records
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .max_by_key(|r| r.spec.decided_at.0);
        let class = match &latest {
            Some(r) => r.spec.class,
            None => first_condition(client, policy).await?.with_context(|| {
                format!("neither a record of {policy} on node/{node} nor the policy names the failure: release it with kubectl")
            })?,
        };
        let now = Timestamp::now();
        let spec = HealingActionSpec {
            policy: policy.to_string(),
            policy_generation: None,
            target: TargetRef {
                kind: TargetKind::Node,
                namespace: None,
                name: node.to_string(),
                uid: uid.to_string(),
                node: Some(node.to_string()),
                reference: format!("node/{node}"),
                workload: None,
                created: None,
            },
            class,
            action: latest.as_ref().map_or(ActionKind::Cordon, |r| r.spec.action),
            step: latest.as_ref().map_or(1, |r| r.spec.step),
            dry_run: false,
            failing_since: None,
            decided_at: Time(now),
            evidence: Evidence::default(),
            members: Vec::new(),
            cause: None,
        };
        let name = record_name(
            policy,
            uid,
            now.as_millisecond(),
            0,
            0,
            Some(reasons::RELEASED),
            Mode::Live,
        );
        Ok(Released { name, spec })
    }

    /// Records the release before it is made: a hold (no action counted against a rate) with
    /// no episode (it continues none).
    async fn begin(&self, client: &kube::Client) -> anyhow::Result<()> {
        let records: Api<HealingAction> = Api::all(client.clone());
        match writer::begin(&records, &self.name, &self.spec, true, None).await {
            Begun::Failed(e) => Err(e).context("recording the release (nothing was released)"),
            Begun::New | Begun::Resumed | Begun::Done => Ok(()),
        }
    }

    async fn finish(
        &self,
        client: &kube::Client,
        (phase, reason, message): (ActionPhase, &'static str, String),
        at: Timestamp,
    ) {
        let records: Api<HealingAction> = Api::all(client.clone());
        let finished = Finished {
            phase,
            reason,
            message,
            calls: 1,
            start: Time(at),
            finish: Time(Timestamp::now()),
        };
        writer::finish(&records, &self.name, finished).await;
    }
}

/// The class of the policy's first condition, if the policy exists.
async fn first_condition(client: &kube::Client, policy: &str) -> anyhow::Result<Option<FailureClass>> {
    let policies: Api<HealingPolicy> = Api::all(client.clone());
    Ok(policies
        .get_opt(policy)
        .await?
        .and_then(|p| p.spec.conditions.first().map(|c| c.class)))
}
