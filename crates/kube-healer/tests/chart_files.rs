//! The chart's example policies are examples/ verbatim, and values.yaml offers a switch for
//! each (off by default).

use std::collections::BTreeMap;
use std::path::Path;

fn yaml_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_stem().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable file"))
        })
        .collect()
}

#[test]
fn the_charts_example_policies_are_the_examples_each_switchable_and_off() {
    let root =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests"))
            .join("../..");
    let examples = yaml_files(&root.join("examples"));
    let chart = yaml_files(&root.join("charts/kube-healer/files/policies"));
    assert!(!examples.is_empty());
    assert_eq!(
        examples.keys().collect::<Vec<_>>(),
        chart.keys().collect::<Vec<_>>(),
        "charts/kube-healer/files/policies/ must hold the files of examples/ (cp examples/*.yaml charts/kube-healer/files/policies/)"
    );
    for (name, text) in &examples {
        assert_eq!(
            Some(text),
            chart.get(name),
            "charts/kube-healer/files/policies/{name}.yaml differs from examples/{name}.yaml"
        );
    }
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("charts/kube-healer/values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml parses");
    for name in examples.keys() {
        assert_eq!(
            values["examplePolicies"][name.as_str()],
            serde_yaml::Value::Bool(false),
            "values.yaml examplePolicies.{name} must exist and be false"
        );
    }
}
