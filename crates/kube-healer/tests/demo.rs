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
    let healed = stdout
        .lines()
        .find(|l| l.starts_with("all 8 failures healed in "))
        .unwrap_or_else(|| panic!("not all healed:\n{stdout}"));
    // Counted from the operator's start, with the build and the cluster told apart.
    assert!(
        healed.contains("s after the operator started (before it: binaries ")
            && healed.contains("cluster ")
            && stdout.contains("in seconds since the operator started"),
        "{healed}"
    );
    println!("{healed}");
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
