//! The README's table of failure classes is what the classes declare (`ClassProperties`): a class
//! added, or a default changed, without its row fails here, printing the table to paste.

use kube_healer_api::{FailureClass, Family, JudgedOn};

const START: &str = "<!-- classes: generated from ClassProperties, checked by tests/readme_classes.rs -->";
const END: &str = "<!-- /classes -->";

fn duration(secs: u64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn judged_on(j: JudgedOn) -> &'static str {
    match j {
        JudgedOn::State => "its state",
        JudgedOn::StateAndEvents => "its state and the kubelet's events",
        JudgedOn::StateAndNode => "its state and its node's",
        JudgedOn::CountedInWindow => "events counted in a window",
        JudgedOn::Lease => "the node's Lease",
        JudgedOn::BoundPods => "the pods bound to it",
    }
}

fn family(f: Option<Family>, inherits: bool) -> String {
    let own = match f {
        None => "",
        Some(Family::NodesDown) => "nodes down",
        Some(Family::NodeHeartbeats) => "late heartbeats",
        Some(Family::NodesFlapping) => "nodes flapping",
        Some(Family::NodeCondition) => "one condition type",
        Some(Family::NodePressure) => "node pressure",
        Some(Family::NodeBlackHoles) => "black holes",
        Some(Family::NodeSystemOOM) => "system OOMs",
        Some(Family::PodsAlike) => "pods alike",
    };
    match (own, inherits) {
        ("", true) => "its node's cause".into(),
        ("", false) => "-".into(),
        (own, true) => format!("{own}; its node's cause"),
        (own, false) => own.into(),
    }
}

fn table() -> String {
    let mut out = String::from(
        "| class | target | default `for` | knobs | judged on | held with |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for &class in FailureClass::ALL {
        let p = class.properties();
        let knobs: Vec<String> = p.knobs.iter().map(|k| format!("`{}`", k.as_str())).collect();
        out += &format!(
            "| {class} | {} | {} | {} | {} | {} |\n",
            class.target_kind().map_or("Pod or Node", |k| k.as_str()),
            duration(p.default_for),
            if knobs.is_empty() {
                "-".into()
            } else {
                knobs.join(", ")
            },
            judged_on(p.judged_on),
            family(p.family, p.inherits_node_cause),
        );
    }
    out
}

#[test]
fn the_readme_lists_every_class_as_declared() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find(START).expect("the README marks its table of classes") + START.len();
    let end = readme[start..].find(END).expect("the table's end marker") + start;
    let committed = readme[start..end].trim();
    let generated = table();
    assert_eq!(
        committed,
        generated.trim(),
        "the README's table of classes differs from the declarations; paste this between the markers:\n{generated}"
    );
}
