//! crds/*.yaml and the chart's copies must be exactly what the types generate: regenerate with
//! `cargo run -p kube-healer -- crd --dir crds --dir charts/kube-healer/files/crds` after
//! changing the API.

use std::path::Path;

const REGENERATE: &str = "cargo run -p kube-healer -- crd --dir crds --dir charts/kube-healer/files/crds";

#[test]
fn committed_crds_match_the_types() {
    for dir in ["../../crds", "../../charts/kube-healer/files/crds"] {
        check_dir(
            &Path::new(
                &std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"),
            )
            .join(dir),
        );
    }
}

fn check_dir(dir: &Path) {
    let mut expected_files: Vec<String> = Vec::new();
    for (file, crd) in kube_healer_api::crds() {
        let path = dir.join(file);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let generated = kube_healer_api::crd_manifest(&crd);
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(committed.lines().count().min(generated.lines().count()))
                + 1;
            panic!(
                "{} drifted from the types (first difference at line {line}); run `{REGENERATE}`",
                path.display()
            );
        }
        expected_files.push(file.to_string());
    }
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present,
        expected_files,
        "{} holds files the types do not generate",
        dir.display()
    );
}

#[test]
fn every_class_and_action_is_in_the_schema() {
    let policy = serde_json::to_string(&kube_healer_api::crds()[0].1).unwrap();
    for class in kube_healer_api::FailureClass::ALL {
        assert!(
            policy.contains(&format!("\"{class}\"")),
            "{class} missing from the HealingPolicy schema"
        );
    }
    for action in kube_healer_api::ActionKind::ALL {
        assert!(
            policy.contains(&format!("\"{action}\"")),
            "{action} missing from the HealingPolicy schema"
        );
    }
}
