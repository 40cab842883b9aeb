//! The flight recorder in the e2e storm scenarios: the operator records what its watches see,
//! and at the end `kube-healer replay` on that recording, with the policies it holds, must decide
//! what the live run decided: the same actions, held (and why) or carried out, on the same
//! targets. `KUBE_HEALER_KEEP_RECORDING=DIR` keeps a copy (DIR/<name>), as the recordings under
//! crates/kube-healer-operator/tests/recordings were made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::TestCluster;

use super::records::phase_reason;

/// (policy, target, action, verdict: `act`, or `hold <reason>`).
pub type Decision = (String, String, String, String);

/// Where the operator of this cluster records, and its flags.
pub fn recorder(cluster: &TestCluster) -> (PathBuf, [String; 2]) {
    let dir = cluster.dir().join("flight");
    let flags = ["--flight-recorder".to_string(), dir.display().to_string()];
    (dir, flags)
}

/// The same for one test of the shared cluster (main.rs'), whose operators run side by side.
pub fn recorder_of(ctx: &kube_healer_testenv::harness::Ctx) -> (PathBuf, [String; 2]) {
    let dir = ctx.cluster.dir().join(format!("flight-{}", ctx.id));
    let flags = ["--flight-recorder".to_string(), dir.display().to_string()];
    (dir, flags)
}

fn live_decision(r: &HealingAction) -> Decision {
    let (phase, reason) = phase_reason(r);
    let verdict = match phase {
        ActionPhase::Skipped => format!("hold {reason}"),
        _ => "act".to_string(),
    };
    (
        r.spec.policy.clone(),
        r.spec.target.name.clone(),
        r.spec.action.to_string(),
        verdict,
    )
}

/// `kube-healer replay` on the recording, as a user runs it, with the operator's flags.
pub fn replay(recording: &Path, flags: &[&str]) -> anyhow::Result<Vec<Decision>> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args(["replay", "-f"])
        .arg(recording)
        .args(["-o", "json"])
        .args(flags)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "replay failed: {stderr}");
    println!("    {}", stderr.trim().replace('\n', "\n    "));
    let mut decisions = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["type"] != "decision" {
            continue;
        }
        let d = &v["decision"];
        let verdict = match d["verdict"].as_str() {
            Some("hold") => format!("hold {}", d["reason"].as_str().unwrap_or_default()),
            _ => "act".to_string(),
        };
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        decisions.push((text("policy"), text("name"), text("action"), verdict));
    }
    Ok(decisions)
}

/// The replay of the recording decides what the live records say was decided. `flags`: the
/// operator's own that bear on decisions (the tests' clear debounce is 2 s).
pub async fn replay_matches_live(
    name: &str,
    recording: &Path,
    live: &[HealingAction],
    flags: &[&str],
) -> anyhow::Result<()> {
    let policies: BTreeSet<&str> = live.iter().map(|r| r.spec.policy.as_str()).collect();
    let live: BTreeSet<Decision> = live.iter().map(live_decision).collect();
    let mut all_flags = vec!["--clear-debounce", "2s"];
    if !flags.iter().any(|f| f.starts_with("--max-nodes-out-of-service")) {
        all_flags.extend(["--max-nodes-out-of-service", super::operator::TESTS_BUDGET]);
    }
    all_flags.extend(flags);
    // The recorder flushes about each second, later on a loaded machine: the recording may not
    // hold the last moments yet. Replayed again until it matches, for up to 20 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let replayed: BTreeSet<Decision> = replay(recording, &all_flags)?
            .into_iter()
            .filter(|d| policies.contains(d.0.as_str()))
            .collect();
        if live == replayed {
            break;
        }
        if std::time::Instant::now() >= deadline
            && let Ok(keep) = std::env::var("KUBE_HEALER_KEEP_RECORDING")
        {
            // Kept to find out why, with `kube-healer replay`.
            keep_recording(recording, &Path::new(&keep).join(name))?;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the replay decided otherwise\n live: {live:#?}\n replayed: {replayed:#?}"
        );
    }
    if let Ok(keep) = std::env::var("KUBE_HEALER_KEEP_RECORDING") {
        keep_recording(recording, &Path::new(&keep).join(name))?;
    }
    println!(
        "    replayed from the flight recording: the same {} decisions",
        live.len()
    );
    Ok(())
}

fn keep_recording(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}
