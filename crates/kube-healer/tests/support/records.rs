//! A policy's records (HealingActions): waiting until its decisions reach a final phase, and
//! reading their outcome.

use kube::api::{Api, ListParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::Ctx;
use kube_healer_testenv::wait;

use super::HEAL;

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
