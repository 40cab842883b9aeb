//! `kube-healer classify` as a user runs it: exit codes, errors and output formats.

use std::io::Write;
use std::process::{Command, Stdio};

fn classify(input: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .arg("classify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kube-healer runs");
    // The CLI may stop reading at the first bad line and exit before all input is written.
    match child.stdin.take().unwrap().write_all(input.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const INPUT: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: stuck, namespace: shop, uid: u1, creationTimestamp: "2026-11-22T09:00:00Z", deletionTimestamp: "2026-11-22T09:50:00Z"}
  spec: {nodeName: n1, containers: [{name: app, image: app:1}]}
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
---
apiVersion: v1
kind: Node
metadata: {name: n1, uid: n1}
status:
  conditions: [{type: Ready, status: "Unknown", reason: NodeStatusUnknown, message: "Kubelet stopped posting node status.", lastTransitionTime: "2026-11-22T09:40:00Z"}]
"#;

#[test]
fn json_lines_carry_the_documented_keys() {
    let (code, stdout, stderr) = classify(INPUT, &["-f", "-", "-o", "json", "--now", "2026-11-22T10:00:00Z"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: skipping Service shop/web"), "{stderr}");
    let findings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let mut classes: Vec<&str> = findings.iter().map(|f| f["class"].as_str().unwrap()).collect();
    classes.sort();
    // The stuck pod is on the unreachable node too: it is also lost (it cannot terminate there).
    assert_eq!(
        classes,
        ["NodeLost", "NodeLost", "NodeUnreachable", "StuckTerminating"]
    );
    let stuck = findings
        .iter()
        .find(|f| f["class"] == "StuckTerminating")
        .unwrap();
    assert_eq!(stuck["kind"], "Pod");
    assert_eq!(stuck["namespace"], "shop");
    assert_eq!(stuck["name"], "stuck");
    assert_eq!(stuck["since"], "2026-11-22T09:50:00Z");
    assert!(
        stuck["message"]
            .as_str()
            .unwrap()
            .contains("10m past its deletionTimestamp")
    );
    let node = findings.iter().find(|f| f["class"] == "NodeUnreachable").unwrap();
    assert!(node.get("namespace").is_none(), "nodes have no namespace key");
}

#[test]
fn findings_younger_than_their_threshold_are_not_reported() {
    // 30 s past the deletionTimestamp: StuckTerminating's threshold is 1m.
    let (code, stdout, _) = classify(INPUT, &["-o", "json", "--now", "2026-11-22T09:50:30Z"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("StuckTerminating"), "{stdout}");
}

#[test]
fn table_output_for_people() {
    let (code, stdout, _) = classify(INPUT, &["--now", "2026-11-22T10:00:00Z"]);
    assert_eq!(code, 0);
    let header = stdout.lines().next().unwrap();
    assert!(
        header.starts_with("CLASS") && header.contains("TARGET") && header.contains("EVIDENCE"),
        "{stdout}"
    );
    assert!(stdout.contains("pod/shop/stuck"), "{stdout}");
    let (code, stdout, _) = classify("kind: List\nitems: []\n", &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("No findings"), "{stdout}");
}

#[test]
fn unreadable_input_fails_naming_line_or_field() {
    let (code, _, stderr) = classify("kind: Pod\nmetadata:\n  name: [oops\n", &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("stdin: line "), "{stderr}");
    let (code, _, stderr) = classify(
        "kind: Node\nmetadata: {name: n}\nstatus: {conditions: [{type: Ready, status: 3, lastTransitionTime: yesterday}]}\n",
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("Node n: field `status.conditions[0]"), "{stderr}");
    let (code, _, stderr) = classify("{}", &["--now", "soon"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--now \"soon\" is not an RFC 3339 time"),
        "{stderr}"
    );
}

/// `kubectl get nodes,events -A -o yaml` of a node in the mission's OOM loop, an hour after it
/// began: 8 kills from 16:50 to 18:15 (each its own Event: the pid differs), and the node
/// controller's NotReady/Ready pairs written as separate objects after a failover.
fn oom_loop_dump() -> String {
    let mut items = vec![
        "- {apiVersion: v1, kind: Node, metadata: {name: w7, uid: w7}, status: {conditions: [{type: Ready, status: \"True\", reason: KubeletReady, lastTransitionTime: \"2026-11-22T18:16:00Z\"}]}}".to_string(),
    ];
    let kills = [
        "16:50", "16:52", "16:52", "17:36", "17:38", "18:07", "18:15", "18:15",
    ];
    for (i, t) in kills.iter().enumerate() {
        items.push(format!(
            "- {{apiVersion: v1, kind: Event, metadata: {{name: w7.oom{i}, namespace: default, uid: 5b1c0000-0000-4000-8000-00000000000{i}}}, involvedObject: {{kind: Node, name: w7, uid: w7}}, reason: SystemOOM, type: Warning, count: 1, message: \"System OOM encountered, victim process: node-exporter, pid: 41{i:02}\", firstTimestamp: \"2026-11-22T{t}:10Z\", lastTimestamp: \"2026-11-22T{t}:10Z\", source: {{component: kubelet, host: w7}}}}"
        ));
    }
    for (i, t) in ["17:40", "17:52", "18:02", "18:14"].iter().enumerate() {
        for (j, reason) in ["NodeNotReady", "NodeReady"].iter().enumerate() {
            items.push(format!(
                "- {{apiVersion: v1, kind: Event, metadata: {{name: w7.r{i}{j}, namespace: default, uid: 5b1c0000-0000-4000-8000-0000000001{i}{j}}}, involvedObject: {{kind: Node, name: w7, uid: w7}}, reason: {reason}, type: Normal, count: 1, message: \"Node w7 status is now: {reason}\", firstTimestamp: \"2026-11-22T{t}:{j}5Z\", lastTimestamp: \"2026-11-22T{t}:{j}5Z\", source: {{component: node-controller}}}}"
            ));
        }
    }
    format!("apiVersion: v1\nkind: List\nitems:\n{}\n", items.join("\n"))
}

#[test]
fn a_kubectl_dump_of_the_oom_loop_shows_the_loop_and_the_flapping() {
    let (code, stdout, stderr) = classify(
        &oom_loop_dump(),
        &["-f", "-", "-o", "json", "--now", "2026-11-22T18:20:00Z"],
    );
    assert_eq!(code, 0, "{stderr}");
    let findings: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |class: &str| {
        findings
            .iter()
            .find(|f| f["class"] == class)
            .unwrap_or_else(|| panic!("no {class} in {stdout}"))
    };
    let oom = of("SystemOOM");
    assert_eq!(oom["name"], "w7");
    let summary = oom["message"].as_str().unwrap();
    assert!(
        summary.starts_with("5 SystemOOM events in the last 1h"),
        "{summary}"
    );
    let flapping = of("NodeFlapping");
    let summary = flapping["message"].as_str().unwrap();
    assert!(summary.contains("changed 8 times"), "{summary}");
}

/// `kubectl get pods,events -o yaml` of a pod whose readiness probe has failed for 20 minutes, as
/// the kubelet tells it: Ready=False with ContainersNotReady, the container running and not
/// restarting, and its "Readiness probe failed" Unhealthy event aggregated into one series.
const PROBE_FAILURE_DUMP: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: api-7d9f, namespace: shop, uid: 3f0c0000-0000-4000-8000-000000000001, creationTimestamp: "2026-11-22T09:00:00Z"}
  spec: {nodeName: n1, containers: [{name: api, image: "registry.example/api:2.1", readinessProbe: {httpGet: {path: /ready, port: 8080}}}]}
  status:
    phase: Running
    startTime: "2026-11-22T09:00:01Z"
    conditions:
    - {type: PodScheduled, status: "True", lastTransitionTime: "2026-11-22T09:00:00Z"}
    - {type: Initialized, status: "True", lastTransitionTime: "2026-11-22T09:00:01Z"}
    - {type: ContainersReady, status: "False", reason: ContainersNotReady, message: "containers with unready status: [api]", lastTransitionTime: "2026-11-22T09:40:00Z"}
    - {type: Ready, status: "False", reason: ContainersNotReady, message: "containers with unready status: [api]", lastTransitionTime: "2026-11-22T09:40:00Z"}
    containerStatuses:
    - {name: api, image: "registry.example/api:2.1", imageID: "", ready: false, started: true, restartCount: 0, state: {running: {startedAt: "2026-11-22T09:00:03Z"}}}
- apiVersion: v1
  kind: Event
  metadata: {name: api-7d9f.1800a1b2c3d4e5f6, namespace: shop, uid: 3f0c0000-0000-4000-8000-0000000000e1}
  involvedObject: {kind: Pod, namespace: shop, name: api-7d9f, uid: 3f0c0000-0000-4000-8000-000000000001, fieldPath: "spec.containers{api}"}
  reason: Unhealthy
  type: Warning
  count: 122
  message: "Readiness probe failed: HTTP probe failed with statuscode: 503"
  firstTimestamp: "2026-11-22T09:39:40Z"
  lastTimestamp: "2026-11-22T09:59:50Z"
  source: {component: kubelet, host: n1}
- apiVersion: v1
  kind: Node
  metadata: {name: n1, uid: n1}
  status:
    conditions: [{type: Ready, status: "True", reason: KubeletReady, lastTransitionTime: "2026-11-22T08:00:00Z"}]
"#;

#[test]
fn a_dump_of_a_pod_failing_its_readiness_probe_shows_a_probe_failure() {
    let (code, stdout, stderr) = classify(
        PROBE_FAILURE_DUMP,
        &["-f", "-", "-o", "json", "--now", "2026-11-22T10:00:00Z"],
    );
    assert_eq!(code, 0, "{stderr}");
    let findings: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(findings.len(), 1, "{stdout}");
    let found = &findings[0];
    assert_eq!(found["class"], "ProbeFailure");
    assert_eq!(found["name"], "api-7d9f");
    assert_eq!(found["since"], "2026-11-22T09:40:00Z");
    let summary = found["message"].as_str().unwrap();
    assert!(
        summary.contains("failed 122 times (threshold 3) since api started"),
        "{summary}"
    );
    assert!(
        summary.ends_with("HTTP probe failed with statuscode: 503"),
        "{summary}"
    );
    // Ten minutes earlier it had not held for its 10 minutes yet.
    let (code, stdout, _) = classify(PROBE_FAILURE_DUMP, &["-f", "-", "--now", "2026-11-22T09:45:00Z"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("ProbeFailure"), "{stdout}");
}
