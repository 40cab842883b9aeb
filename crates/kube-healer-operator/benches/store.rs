//! Prints what the operator's pod store costs per pod, indexes included.
//! Run: `cargo bench -p kube-healer-operator --bench store`.

use kube_healer_core::convert::pod_view;
use kube_healer_operator::store::Stores;
use kube_healer_testenv::fixtures::{realistic_pod, rss_kib};

fn main() {
    const PODS: usize = 200_000;
    let sources: Vec<_> = (0..1000).map(|i| realistic_pod(i, false)).collect();
    let mut stores = Stores::default();
    let before = rss_kib();
    for i in 0..PODS {
        let mut p = sources[i % sources.len()].clone();
        p.metadata.name = Some(format!("web-7d9f8c6b5-{i:05x}"));
        p.metadata.uid = Some(format!("{i:08x}-1d2c-4e5f-8a9b-0c1d2e3f4a5b"));
        let view = pod_view(&p, stores.interner_mut()).expect("a realistic pod converts");
        stores.upsert_pod(view, 1_800_000_000);
    }
    let after = rss_kib();
    println!(
        "operator pod store: {:.0} bytes per pod for {PODS} pods (views, keys, node index, interned strings, allocator overhead)",
        (after - before) as f64 * 1024.0 / PODS as f64
    );
}
