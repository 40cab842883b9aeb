//! A policy's records (HealingActions): waiting until its decisions reach a final phase, and
//! reading their outcome.

use kube::api::{Api, ListParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::Ctx;
use kube_healer_testenv::wait;

use super::HEAL;

/// The policy's records as they are, final or not.
pub async fn all_records(ctx: &Ctx, policy: &str) -> Result<Vec<HealingAction>, kube::Error> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    Ok(api.list(&lp).await?.items)
}

/// The policy's records once one of them Succeeded (a scenario's control healed), within `within`.
pub async fn healed(
    ctx: &Ctx,
    policy: &str,
    within: std::time::Duration,
) -> anyhow::Result<Vec<HealingAction>> {
    wait::until(&format!("{policy} healing its target"), within, || async {
        let recs = all_records(ctx, policy).await?;
        let done = recs.iter().any(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == ActionPhase::Succeeded)
        });
        Ok(done.then_some(recs))
    })
    .await
    .map_err(Into::into)
}

/// Whether a Deployment's pod template carries a rollout restart (RestartOwner's, or a
/// person's `kubectl rollout restart`).
pub async fn restarted(ctx: &Ctx, ns: &str, name: &str) -> anyhow::Result<bool> {
    let deployment = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await?;
    let annotations = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    Ok(annotations.contains_key("kubectl.kubernetes.io/restartedAt"))
}

/// The records of a policy, once `count` of them have reached a final phase.
pub async fn records(ctx: &Ctx, policy: &str, count: usize) -> anyhow::Result<Vec<HealingAction>> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    wait::until(&format!("{count} final records of {policy}"), HEAL, || async {
        let list = match api.list(&lp).await {
            Ok(l) => l.items,
            // A CRD just installed answers 429 while its storage initializes.
            Err(kube::Error::Api(s)) if s.code == 429 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let done = list
            .iter()
            .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_final()))
            .count();
        Ok((done >= count).then_some(list))
    })
    .await
    .map_err(Into::into)
}

/// A final record's phase and reason.
pub fn phase_reason(r: &HealingAction) -> (ActionPhase, String) {
    let s = r.status.as_ref().expect("final records have a status");
    (s.phase, s.reason.clone().unwrap_or_default())
}

/// Each pod a policy's final records name, with its outcome(s) as `Phase/Reason`: a record's
/// target, or each member of a batch record (leftovers removed together) with its own outcome.
pub fn outcomes_by_pod(recs: &[HealingAction]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_pod: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in recs {
        let Some(status) = r.status.as_ref().filter(|s| s.phase.is_final()) else {
            continue;
        };
        if r.spec.members.is_empty() {
            let reason = status.reason.clone().unwrap_or_default();
            by_pod
                .entry(r.spec.target.name.clone())
                .or_default()
                .push(format!("{:?}/{reason}", status.phase));
        } else {
            for m in &r.spec.members {
                let outcome = status.members.iter().find(|o| o.uid == m.target.uid);
                let said = outcome.map_or("unfinished".to_string(), |o| {
                    format!("{:?}/{}", o.phase, o.reason.clone().unwrap_or_default())
                });
                by_pod.entry(m.target.name.clone()).or_default().push(said);
            }
        }
    }
    by_pod
}

/// A pod's outcome in a policy's records: (phase, reason, API calls), from its own record or
/// from the batch it was in.
pub fn pod_outcome(recs: &[HealingAction], pod: &str) -> Option<(ActionPhase, String, i32)> {
    recs.iter().find_map(|r| {
        let status = r.status.as_ref()?;
        if r.spec.members.is_empty() {
            (r.spec.target.name == pod).then(|| {
                (
                    status.phase,
                    status.reason.clone().unwrap_or_default(),
                    status.attempts,
                )
            })
        } else {
            let m = r.spec.members.iter().find(|m| m.target.name == pod)?;
            let o = status.members.iter().find(|o| o.uid == m.target.uid)?;
            Some((o.phase, o.reason.clone().unwrap_or_default(), o.attempts))
        }
    })
}

/// The records of a policy, once their final outcomes name `count` pods (batch records name
/// several).
pub async fn records_naming(ctx: &Ctx, policy: &str, count: usize) -> anyhow::Result<Vec<HealingAction>> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    let waited = wait::until(
        &format!("{count} pods in final records of {policy}"),
        HEAL,
        || async {
            let list = match api.list(&lp).await {
                Ok(l) => l.items,
                Err(kube::Error::Api(s)) if s.code == 429 => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let named: usize = outcomes_by_pod(&list).values().map(Vec::len).sum();
            Ok((named >= count).then_some(list))
        },
    )
    .await;
    match waited {
        Ok(list) => Ok(list),
        // Which records are not final, and what each says: the story of a timeout.
        Err(e) => {
            let list = api.list(&lp).await.map(|l| l.items).unwrap_or_default();
            let open: Vec<String> = list
                .iter()
                .filter(|r| !r.status.as_ref().is_some_and(|s| s.phase.is_final()))
                .map(|r| {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    let status = r.status.as_ref().map(|s| format!("{:?}", s.phase));
                    format!(
                        "{name} ({}, {} members): {status:?}",
                        r.spec.target.reference,
                        r.spec.members.len()
                    )
                })
                .collect();
            anyhow::bail!("{e}; {} records, not final: {open:?}", list.len())
        }
    }
}

/// A record's status message ("" when it has none).
pub fn message(r: &HealingAction) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}
