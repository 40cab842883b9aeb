//! Prints the store cost of a pod view and the classification throughput on one core.
//! Run: `cargo bench -p kube-healer-core --bench classify`.

use std::hint::black_box;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::thresholds::Knobs;
use kube_healer_core::view::{ContainerState, PodView};
use kube_healer_core::{Snapshot, classify_pod};
use kube_healer_testenv::fixtures::{realistic_pod, rss_kib};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// Heap bytes owned by a view beyond the shared (interned) strings, plus its inline size.
fn view_bytes(p: &PodView) -> usize {
    let mut n = std::mem::size_of::<PodView>()
        + p.name.len()
        + 16
        + match &p.uid {
            kube_healer_core::view::Uid::Other(s) => s.len(),
            kube_healer_core::view::Uid::Uuid(_) => 0,
        };
    n += p.message().map_or(0, str::len);
    n += std::mem::size_of_val(&*p.conditions)
        + p.conditions
            .iter()
            .map(|c| c.message.as_ref().map_or(0, |m| m.len()))
            .sum::<usize>();
    n += std::mem::size_of_val(&*p.containers);
    for c in p.containers.iter() {
        if let ContainerState::Waiting { message: Some(m), .. } = &c.state {
            n += m.len();
        }
    }
    n
}

fn main() {
    const PODS: usize = 200_000;
    let mut interner = Interner::default();
    let sources: Vec<Pod> = (0..1000).map(|i| realistic_pod(i, false)).collect();
    let before = rss_kib();
    let mut views = Vec::with_capacity(PODS);
    for i in 0..PODS {
        let mut p = sources[i % sources.len()].clone();
        p.metadata.name = Some(format!("web-7d9f8c6b5-{i:05x}"));
        p.metadata.uid = Some(format!("{:08x}-1d2c-4e5f-8a9b-0c1d2e3f4a5b", i));
        views.push(pod_view(&p, &mut interner).unwrap());
    }
    let after = rss_kib();
    let computed: usize = views.iter().map(view_bytes).sum::<usize>() / PODS;
    println!(
        "pod view: {} bytes inline, {computed} bytes per healthy pod with its own allocations (shared strings excluded)",
        std::mem::size_of::<PodView>()
    );
    println!(
        "RSS growth for {PODS} healthy pod views: {:.0} bytes per pod (allocator overhead included)",
        (after - before) as f64 * 1024.0 / PODS as f64
    );

    let nodes = (0..1000)
        .map(|i| {
            let n = serde_json::from_value(json!({"metadata": {"name": format!("node-{i}"), "uid": format!("n{i}")},
                "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z"}]}}))
            .unwrap();
            node_view(&n, &mut interner).unwrap()
        })
        .collect();
    // 1% failing pods, as in a cluster having a bad day.
    for i in (0..PODS).step_by(100) {
        views[i] = pod_view(&realistic_pod(i, true), &mut interner).unwrap();
    }
    let snapshot = Snapshot::new(views, nodes, vec![], vec![]);
    let knobs = Knobs::default();
    let mut findings = Vec::new();
    let rounds = 10;
    let start = Instant::now();
    for _ in 0..rounds {
        findings.clear();
        for pod in &snapshot.pods {
            classify_pod(black_box(pod), &snapshot, &knobs, NOW, &mut findings);
        }
    }
    let elapsed = start.elapsed();
    let evaluations = (PODS * rounds) as f64;
    println!(
        "classification: {:.2} M pod evaluations per second on one core ({} findings per round, 1% failing)",
        evaluations / elapsed.as_secs_f64() / 1e6,
        findings.len()
    );
}
