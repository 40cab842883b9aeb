//! The histories that broke an invariant while its rule was being built (tests/histories/*,
//! each with what it found and what fixed it) hold now, and a kept history's recording is read
//! back whole by the reader `kube-healer replay` uses.

use std::path::Path;

use kube_healer_invariants::harness::T0;
use kube_healer_invariants::{Run, Setup, check, recording};
use kube_healer_operator::flight::read;

fn kept() -> Vec<(String, Vec<kube_healer_invariants::Step>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut kept: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/histories")
        .map(|e| e.expect("an entry").path())
        .map(|p| {
            let steps = recording::read(&p.join("history.json")).unwrap_or_else(|e| panic!("{e}"));
            (
                p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                steps,
            )
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept
}

#[test]
fn every_kept_history_holds() {
    let kept = kept();
    assert!(kept.len() >= 3, "kept histories: {}", kept.len());
    let mut broken = Vec::new();
    for (name, steps) in &kept {
        for v in check(Setup::default(), steps).binding() {
            broken.push(format!(
                "{name}: {:?} at +{}s: {}",
                v.invariant,
                v.at - T0,
                v.what
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_kept_history_recording_is_read_back_whole() {
    let (name, steps) = kept().into_iter().next().expect("a kept history");
    let dir = tempfile::tempdir().expect("a temporary directory");
    recording::keep(dir.path(), Setup::default(), &steps).expect("kept");
    let (frames, warnings) = read::read_all(&dir.path().join("recording")).expect("read back");
    let run = Run::history(Setup::default(), &steps);
    assert!(warnings.is_empty(), "{name}: {warnings:?}");
    assert_eq!(frames.len(), run.frames.len(), "{name}");
    assert_eq!(
        frames.last().map(|f| f.t),
        run.frames.last().map(|f| f.t),
        "{name}"
    );
}
