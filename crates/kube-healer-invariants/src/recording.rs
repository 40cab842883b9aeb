//! A shrunk history kept: its steps (run again by the regression test) and the recording of what
//! the engine was given, which `kube-healer replay` reads.

use std::path::Path;

use kube_healer_operator::flight::ring::{Bounds, Ring};

use crate::harness::{Run, Setup};
use crate::history::Step;

/// Writes `steps` as `<dir>/history.json` and their run's recording as the ring `<dir>/recording`.
pub fn keep(dir: &Path, setup: Setup, steps: &[Step]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(steps).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("history.json"), json + "\n")?;
    let run = Run::history(setup, steps);
    let Some(first) = run.frames.first() else {
        return Ok(());
    };
    let bounds = Bounds {
        max_bytes: 64 << 20,
        max_age_ms: None,
    };
    let mut ring = Ring::open(&dir.join("recording"), bounds, first.t)?;
    for frame in &run.frames {
        ring.write(frame)?;
    }
    ring.finish()
}

/// A kept history's steps.
pub fn read(path: &Path) -> Result<Vec<Step>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
