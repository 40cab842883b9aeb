//! `kube-healer record --from-dump` and `kube-healer replay` as a user runs them, offline: a dump
//! (the input classify reads) becomes a recording of one instant, a policy is replayed against it,
//! and bad input is refused with the file and the line or document named.

use std::process::Command;

fn kube_healer(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args(args)
        .output()
        .expect("kube-healer runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A pod stuck Terminating since 09:50, a healthy one, and a Service (skipped).
const DUMP: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: stuck, namespace: shop, uid: u1, creationTimestamp: "2026-11-22T09:00:00Z", deletionTimestamp: "2026-11-22T09:50:00Z", deletionGracePeriodSeconds: 30}
  spec: {nodeName: n1, containers: [{name: app, image: app:1, env: [{name: TOKEN, value: s3cret}]}]}
  status: {phase: Running}
- apiVersion: v1
  kind: Pod
  metadata: {name: fine, namespace: shop, uid: u2, creationTimestamp: "2026-11-22T09:00:00Z"}
  spec: {nodeName: n1, containers: [{name: app, image: app:1}]}
  status:
    phase: Running
    conditions: [{type: Ready, status: "True"}]
    containerStatuses: [{name: app, image: app:1, imageID: "", ready: true, restartCount: 0, state: {running: {startedAt: "2026-11-22T09:00:05Z"}}}]
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
- apiVersion: v1
  kind: Node
  metadata: {name: n1, uid: n1}
  status:
    conditions: [{type: Ready, status: "True", lastTransitionTime: "2026-11-22T08:00:00Z", lastHeartbeatTime: "2026-11-22T09:59:50Z"}]
"#;

fn examples(name: &str) -> String {
    format!(
        "{}/../../examples/{name}",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests")
    )
}

#[test]
fn a_dump_replayed_against_a_policy_gives_its_decision() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.yaml");
    std::fs::write(&dump, DUMP).unwrap();
    let rec = dir.path().join("rec");
    let (code, _, stderr) = kube_healer(&[
        "record",
        "--from-dump",
        dump.to_str().unwrap(),
        "--at",
        "2026-11-22T10:00:00Z",
        "-o",
        rec.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: skipping Service shop/web"), "{stderr}");
    assert!(
        stderr.contains("recorded one instant: 2 pods, 1 nodes"),
        "{stderr}"
    );
    // What a user might not want to ship stays out of the recording.
    let mut raw = String::new();
    for entry in std::fs::read_dir(&rec).unwrap() {
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(entry.unwrap().path()).unwrap());
        std::io::Read::read_to_string(&mut gz, &mut raw).unwrap();
    }
    assert!(raw.contains("\"stuck\"") && !raw.contains("s3cret"), "{raw}");

    let (code, stdout, stderr) = kube_healer(&[
        "replay",
        "-f",
        rec.to_str().unwrap(),
        "--policy",
        &examples("stuck-terminating.yaml"),
        "--to",
        "2026-11-22T10:05:00Z",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let decisions: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "decision").collect();
    assert_eq!(decisions.len(), 1, "{stdout}");
    let d = &decisions[0]["decision"];
    assert_eq!(
        (
            d["policy"].as_str(),
            d["name"].as_str(),
            d["action"].as_str(),
            d["verdict"].as_str()
        ),
        (
            Some("stuck-terminating"),
            Some("stuck"),
            Some("ForceDelete"),
            Some("act")
        ),
        "{stdout}"
    );
    // Stuck since 09:50 (30 s grace), due 2 minutes after: decided once it has been known for
    // PEERS_SETTLE (2 s) after the dump was taken (a pod stuck with its node may be one of many).
    assert_eq!(decisions[0]["time"], "2026-11-22T10:00:02Z", "{stdout}");
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["pods_removed"], 1, "{stdout}");

    // Replayed only to the dump's moment, the pod is known but not settled yet: no decision.
    let (code, table, _) = kube_healer(&[
        "replay",
        "-f",
        rec.to_str().unwrap(),
        "--policy",
        &examples("stuck-terminating.yaml"),
    ]);
    assert_eq!(code, 0);
    assert!(
        table.contains("summary (to 2026-11-22T10:00:00Z): 0 decisions"),
        "{table}"
    );
    let (code, table, _) = kube_healer(&[
        "replay",
        "-f",
        rec.to_str().unwrap(),
        "--policy",
        &examples("stuck-terminating.yaml"),
        "--to",
        "2026-11-22T10:00:02Z",
    ]);
    assert_eq!(code, 0);
    assert!(
        table.contains("TIME") && table.contains("pod shop/stuck") && table.contains("ForceDelete, step 1"),
        "{table}"
    );
    assert!(
        table.contains("summary (to 2026-11-22T10:00:02Z): 1 decisions: 1 acted"),
        "{table}"
    );
}

#[test]
fn bad_recordings_and_policies_are_refused_with_the_place_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let (code, _, stderr) = kube_healer(&["replay", "-f", missing.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nothing-here"), "{stderr}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = kube_healer(&["replay", "-f", empty.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no recording segments"), "{stderr}");

    let text = dir.path().join("notes.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&text).unwrap(),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut gz, b"hello\n").unwrap();
    gz.finish().unwrap();
    let (code, _, stderr) = kube_healer(&["replay", "-f", text.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("notes.jsonl.gz: line 1: not a kube-healer recording"),
        "{stderr}"
    );

    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: healing.kubehealer.io/v1alpha1\nkind: HealingPolicy\nmetadata: {name: ok}\nspec:\n  target: {kind: Pod}\n  conditions: [{class: Evicted}]\n  actions: [{action: Delete}]\n---\napiVersion: healing.kubehealer.io/v1alpha1\nkind: HealingPolicy\nmetadata: {name: bad}\nspec:\n  target: {kind: Pod}\n  conditions: [{class: NoSuchClass}]\n  actions: [{action: Delete}]\n",
    )
    .unwrap();
    let (code, _, stderr) = kube_healer(&[
        "replay",
        "-f",
        text.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("p.yaml: document 2"), "{stderr}");

    let (code, _, stderr) = kube_healer(&["replay", "-f", missing.to_str().unwrap(), "--speed", "fast"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("`max` or a positive factor"), "{stderr}");
}
