//! `kube-healer release node/NAME --reason TEXT`: a person lets go, on purpose, of what
//! kube-healer holds a node with (its cordon and taints, whether their policy still exists or
//! not). kube-healer lifts its marks only on evidence that the node recovered; this is the way
//! out when a person knows better. Each policy's release is recorded as a HealingAction
//! (Succeeded/Released, naming the reason), and a released cordon counts as lifted by a
//! person: a policy still there does not cordon the node again for that failure, nor within
//! its cooldown. Remediations and replacements handed to other tools are theirs to end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube_healer_api::record::{ActionPhase, Evidence, TargetRef};
use kube_healer_api::{
    ActionKind, FailureClass, HealingAction, HealingActionSpec, HealingPolicy, POLICY_LABEL,
    TARGET_UID_LABEL, TargetKind, reasons,
};
use kube_healer_operator::act::node::{release_patch, released_policies, update_node};
use kube_healer_operator::record::label_value;
use kube_healer_operator::record::writer::{self, Begun, Finished};

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
    let mut policies = released_policies(&node);
    if let Some(only) = &args.policy {
        policies.retain(|p| p == only);
    }
    if policies.is_empty() {
        println!(
            "node/{name}: nothing of kube-healer's to release{}",
            match &args.policy {
                Some(p) => format!(" for policy {p}"),
                None => String::new(),
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let uid = node.metadata.uid.clone().unwrap_or_default();
    for policy in policies {
        let now = k8s_openapi::jiff::Timestamp::now();
        if args.dry_run {
            let said = release_patch(&node, &policy, now.as_second())
                .map(|(_, s)| s)
                .unwrap_or_default();
            println!("node/{name}: {policy}: would release ({said})");
            continue;
        }
        let record = Released::describe(&client, (&policy, &name, &uid)).await?;
        let done = update_node(&client, &name, Some(&uid), |n| {
            release_patch(n, &policy, now.as_second())
        })
        .await
        .with_context(|| format!("releasing node/{name} from {policy}"))?;
        let Some(undone) = done else {
            println!("node/{name}: {policy}: nothing left to release");
            continue;
        };
        let message = format!(
            "released by hand (kube-healer release): {}: {undone}",
            args.reason.trim()
        );
        record.write(&client, &message, now).await?;
        println!("node/{name}: {policy}: {undone} (recorded as {})", record.name);
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
        let now = k8s_openapi::jiff::Timestamp::now();
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
            },
            class,
            action: latest.as_ref().map_or(ActionKind::Cordon, |r| r.spec.action),
            step: latest.as_ref().map_or(1, |r| r.spec.step),
            dry_run: false,
            failing_since: None,
            decided_at: Time(now),
            evidence: Evidence::default(),
            members: Vec::new(),
        };
        let name = record_name(policy, node, now.as_second());
        Ok(Released { name, spec })
    }

    async fn write(
        &self,
        client: &kube::Client,
        message: &str,
        at: k8s_openapi::jiff::Timestamp,
    ) -> anyhow::Result<()> {
        let records: Api<HealingAction> = Api::all(client.clone());
        // A hold (no action counted against a rate) with no episode (it continues none).
        match writer::begin(&records, &self.name, &self.spec, true, None).await {
            Begun::Failed(e) => return Err(e).context("recording the release"),
            Begun::New | Begun::Resumed | Begun::Done => {}
        }
        let finished = Finished {
            phase: ActionPhase::Succeeded,
            reason: reasons::RELEASED,
            message: message.to_string(),
            calls: 1,
            start: Time(at),
            finish: Time(k8s_openapi::jiff::Timestamp::now()),
        };
        writer::finish(&records, &self.name, finished).await;
        Ok(())
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

/// A record name of the policy's release of the node at `at`: a DNS subdomain.
fn record_name(policy: &str, node: &str, at: i64) -> String {
    let mut name = format!("{policy}-released-{node}-{at}");
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_s_record_name_is_an_object_name_however_long_its_parts() {
        let name = record_name("p", "n", 1_800_000_000);
        assert_eq!(name, "p-released-n-1800000000");
        let long = record_name(&"a".repeat(200), &format!("{}.", "b".repeat(100)), 5);
        assert!(long.len() <= 253 && !long.ends_with(['-', '.']), "{long}");
    }
}
