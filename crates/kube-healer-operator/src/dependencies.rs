//! The dependency rule, enforced: every `crate::` path in the sources is read, and each module
//! may name only the modules the rule allows. The leaves import nothing from the crate; `act`
//! never reaches into the engine, the gate, the policies or the stores; and there is no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module -> the crate modules it may use. Anything not listed may use nothing.
const ALLOWED: &[(&str, &[&str])] = &[
    ("target", &[]),
    ("clock", &[]),
    ("protocol", &[]),
    ("metrics", &[]),
    ("api_health", &["clock"]),
    ("retry", &["api_health"]),
    ("leader", &[]),
    ("failpoint", &[]),
    ("watch", &["metrics", "failpoint"]),
    ("store", &["target"]),
    ("policy", &["store", "target", "clock", "record"]),
    ("record", &["retry"]),
    (
        "act",
        &["protocol", "record", "retry", "metrics", "clock", "failpoint"],
    ),
    ("decide", &["policy", "store", "target", "protocol", "record"]),
    (
        "engine",
        &[
            "watch",
            "store",
            "policy",
            "decide",
            "record",
            "protocol",
            "target",
            "clock",
            "metrics",
            "api_health",
        ],
    ),
    ("http", &["store", "metrics"]),
    (
        "flight",
        &[
            "watch", "engine", "record", "protocol", "clock", "metrics", "store",
        ],
    ),
];

/// Files that are leaves inside their module: they import nothing, not even from their parent.
const LEAF_FILES: &[&str] = &[
    "act/outcome.rs",
    "record/names.rs",
    "store/synced.rs",
    "store/relist.rs",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source folder reads") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a text names through `crate::`.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // kube_healer_crate::..., not ours
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The module graph as the sources spell it: (file, module) -> modules named.
fn graph() -> BTreeMap<(String, String), BTreeSet<String>> {
    let src =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"))
            .join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if relative == "lib.rs" || relative == "dependencies.rs" {
            continue;
        }
        let module = relative
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        let mut uses = named(&text);
        uses.remove(&module);
        out.insert((relative, module), uses);
    }
    out
}

#[test]
fn every_module_uses_only_what_the_rule_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for ((file, module), uses) in graph() {
        let may = allowed.get(module.as_str()).copied().unwrap_or_default();
        for used in uses.iter().filter(|u| !may.contains(&u.as_str())) {
            wrong.push(format!("{file} ({module}) uses crate::{used}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies the rule does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn leaf_files_import_nothing_from_the_crate() {
    let src =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"))
            .join("src");
    for leaf in LEAF_FILES {
        let text = std::fs::read_to_string(src.join(leaf)).expect("a leaf file reads");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(
            named(code).is_empty() && !code.contains("super::"),
            "{leaf} is a leaf but imports from the crate"
        );
    }
}

#[test]
fn the_modules_form_no_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((_, module), uses) in graph() {
        edges.entry(module).or_default().extend(uses);
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("an import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_crate_paths_and_only_those() {
    let text = "use crate::store::Stores;\nuse kube_healer_crate::x;\nlet a = crate::act::Outcome::new;";
    assert_eq!(
        named(text),
        BTreeSet::from(["store".to_string(), "act".to_string()])
    );
}
