//! Prints what the operator's pod store costs per pod, indexes included, and what a pod in
//! trouble adds with its timeline at its bound.
//! Run: `cargo bench -p kube-healer-operator --bench store`.

use k8s_openapi::api::core::v1::Pod;
use kube_healer_core::convert::pod_view;
use kube_healer_core::timeline::MOMENTS_KEPT;
use kube_healer_core::view::PodView;
use kube_healer_operator::store::Stores;
use kube_healer_testenv::fixtures::{realistic_pod, rss_kib};

fn named(source: &Pod, i: usize) -> Pod {
    let mut p = source.clone();
    p.metadata.name = Some(format!("web-7d9f8c6b5-{i:05x}"));
    p.metadata.uid = Some(format!("{i:08x}-1d2c-4e5f-8a9b-0c1d2e3f4a5b"));
    p
}

fn main() {
    const PODS: usize = 200_000;
    let sources: Vec<_> = (0..1000).map(|i| realistic_pod(i, false)).collect();
    let mut stores = Stores::default();
    let before = rss_kib();
    for i in 0..PODS {
        let p = named(&sources[i % sources.len()], i);
        let view = pod_view(&p, stores.interner_mut()).expect("a realistic pod converts");
        stores.upsert_pod(view, 1_800_000_000);
    }
    let after = rss_kib();
    println!(
        "operator pod store: {:.0} bytes per pod for {PODS} pods (views, keys, node index, interned strings, allocator overhead; a pod view is {} bytes, its timeline field 8 of them)",
        (after - before) as f64 * 1024.0 / PODS as f64,
        std::mem::size_of::<PodView>(),
    );

    // Pods in trouble, in a store of their own: each pulls, backs off and crash-loops until its
    // timeline is full.
    const TROUBLED: usize = 50_000;
    let failing: Vec<_> = (0..1000).map(|i| realistic_pod(i, true)).collect();
    drop(stores);
    let mut stores = Stores::default();
    let before = rss_kib();
    for round in 0..(MOMENTS_KEPT + 4) {
        for i in 0..TROUBLED {
            let mut p = named(&failing[i % failing.len()], i);
            if let Some(c) = p
                .status
                .as_mut()
                .and_then(|s| s.container_statuses.as_mut())
                .and_then(|c| c.first_mut())
            {
                c.restart_count = round as i32 / 3;
                if let Some(w) = c.state.as_mut().and_then(|s| s.waiting.as_mut()) {
                    w.reason =
                        Some(["ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff"][round % 3].into());
                }
            }
            let view = pod_view(&p, stores.interner_mut()).expect("a realistic pod converts");
            stores.upsert_pod(view, 1_800_000_000 + round as i64 * 10);
        }
    }
    let after = rss_kib();
    let full = stores
        .pods()
        .filter(|p| p.timeline.moments().0.len() == MOMENTS_KEPT)
        .count();
    let heap: usize = stores.pods().map(|p| p.timeline.heap_bytes()).sum();
    println!(
        "timeline of a pod in trouble at its bound of {MOMENTS_KEPT} moments: {} bytes of heap ({full} of {TROUBLED} pods full); such a pod costs {:.0} bytes in the store in all; a pod that starts cleanly keeps no timeline",
        heap / TROUBLED,
        (after - before) as f64 * 1024.0 / TROUBLED as f64,
    );
}
