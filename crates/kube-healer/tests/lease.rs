//! A leader that cannot renew its Lease must stop deciding before the Lease can expire under it
//! (another replica could take it then): the chart's permission on the election Lease is taken
//! away, and no replica may lead until it is back. And a leader that loses it in the middle of a
//! drain stops there, while the next one keeps the policy's limits (`takeover.rs`). Its own
//! binary: the tests take the chart's permission on a Lease away (the refusals expected
//! meanwhile would also hide other tests' 403s from the end-of-run check).

mod support;
#[path = "lease/takeover.rs"]
mod takeover;

use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use kube_healer_testenv::ClusterOptions;
use kube_healer_testenv::harness::{Ctx, test};
use support::Operator;
use support::once::{Story, replica, single_leader};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test("a_leader_that_cannot_renew_its_lease_steps_down", lease_lost),
            test(
                "a_leader_that_loses_its_lease_mid_drain_stops_and_max_concurrent_holds_across_the_takeover",
                takeover::takeover_mid_drain,
            ),
        ],
    )
}

/// The chart's permission on the election Lease is taken away: the leader's next renewal is
/// refused, and it must stop deciding at once (another replica could take the Lease once it
/// expires). With the permission back, one replica leads again.
async fn lease_lost(ctx: Ctx) -> anyhow::Result<()> {
    let replicas = [
        replica(&ctx, "lease-0".into()).await?,
        replica(&ctx, "lease-1".into()).await?,
    ];
    let refs: Vec<&Operator> = replicas.iter().collect();
    let story = Story::default();
    single_leader(&refs, Duration::from_secs(30), &story).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), support::CHART_NAMESPACE);
    let election: Vec<RoleBinding> = bindings
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|b| b.role_ref.name.ends_with("-leader-election"))
        .collect();
    anyhow::ensure!(!election.is_empty(), "the chart's leader-election RoleBinding");
    ctx.cluster.expect_refusals(Duration::from_secs(90));
    let revoked = Instant::now();
    for b in &election {
        bindings
            .delete(
                b.metadata.name.as_deref().unwrap_or_default(),
                &DeleteParams::default(),
            )
            .await?;
    }
    // The safety property: each replica stopped deciding before the Lease it held could expire
    // (another replica could take it then), by its own log's clock against the Lease's last
    // renewal; how soon a poll of its metric sees that depends on the machine's load.
    let limit = Duration::from_secs(60);
    let stepped_down = loop {
        let leading = support::once::leaders(&refs).await?;
        if leading.iter().all(|l| !l) {
            break revoked.elapsed();
        }
        anyhow::ensure!(
            revoked.elapsed() < limit,
            "a replica still leads {limit:?} after its Lease permission was taken away: {leading:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expiry = support::once::lease_expiry(&ctx, support::CHART_NAMESPACE, "kube-healer-leader").await?;
    for op in &refs {
        if let Some(at) = support::once::stepped_down_at(op) {
            anyhow::ensure!(
                at < expiry,
                "{} stepped down at {at}, after its Lease expired at {expiry}",
                op.name()
            );
        }
    }
    anyhow::ensure!(
        refs.iter().any(|op| support::once::stepped_down_at(op).is_some()),
        "no replica logged stepping down"
    );
    // Nobody leads while the Lease cannot be renewed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let leading = support::once::leaders(&refs).await?;
    anyhow::ensure!(
        leading.iter().all(|l| !l),
        "a replica leads without its Lease: {leading:?}"
    );
    for b in &election {
        let mut b = b.clone();
        b.metadata.resource_version = None;
        b.metadata.uid = None;
        b.metadata.creation_timestamp = None;
        b.metadata.managed_fields = None;
        bindings.create(&PostParams::default(), &b).await?;
    }
    let restored = Instant::now();
    single_leader(&refs, Duration::from_secs(30), &story).await?;
    println!(
        "    the leader stepped down {:.1} s after its Lease permission was taken away; a leader again {:.1} s after it came back",
        stepped_down.as_secs_f64(),
        restored.elapsed().as_secs_f64()
    );
    Ok(())
}
