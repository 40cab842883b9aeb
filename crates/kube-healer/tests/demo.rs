//! `kube-healer demo --exit`: the README's first command, run to its healed table.

use std::process::Command;

#[test]
fn the_demo_heals_every_failure_it_creates() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args(["demo", "--exit", "--timeout", "150s"])
        .output()
        .expect("running kube-healer demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all 8 failures healed"), "{stdout}");
    let table = stdout
        .split("$ kubectl get healingactions")
        .nth(1)
        .expect("the HealingActions table");
    for expected in [
        "pod/shop/checkout",
        "pod/shop/cart-0",
        "pod/shop/payments",
        "node/flappy-node",
        "ForceDelete",
    ] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }
}
