//! Reading a recording back: a ring directory (its segments in order) or one segment file.
//! The first segment is read from its opening state; the next ones without it (the reader has
//! followed every change up to them). A segment's torn end (a recorder killed mid-write) ends it
//! quietly, with a note; a line that is not a frame is an error naming the file and the line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::frame::{Frame, Kind, Watch};
use super::ring::{Header, VERSION, segments_in};

/// A recording that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("{path}: line {line}: {problem}")]
    Line {
        path: String,
        line: usize,
        problem: String,
    },
}

/// The frames of a recording, in order, read as they are needed (an hour of a large cluster
/// is not held in memory); what was noticed on the way is in `notes`.
pub struct Reader {
    files: std::vec::IntoIter<PathBuf>,
    first: bool,
    current: Option<Open>,
    /// The last segment read, and whether it was read to its end: the next one skips its
    /// opening state only if it follows on from it.
    last: Option<(u64, bool)>,
    /// Torn segment ends and the like: worth saying, not worth failing.
    pub notes: Vec<String>,
}

struct Open {
    name: String,
    reader: BufReader<MultiGzDecoder<File>>,
    line: usize,
    skip: usize,
    first: bool,
    /// The segment before, and whether it was read to its end.
    before: Option<(u64, bool)>,
    /// This segment's number, once its header is read, and whether it ended cleanly.
    segment: Option<u64>,
    clean: bool,
    /// Frames the format implies before the segment's own (see `implied`).
    implied: std::collections::VecDeque<Frame>,
}

/// The segment files at `path` (a directory or one file), in order.
fn files(path: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let fail = |problem: String| ReadError::File {
        path: path.display().to_string(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let files: Vec<PathBuf> = segments_in(path)
        .map_err(|e| fail(e.to_string()))?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if files.is_empty() {
        return Err(fail(
            "no recording segments (*.jsonl.gz) in this directory".into(),
        ));
    }
    Ok(files)
}

/// Opens the recording at `path`.
pub fn open(path: &Path) -> Result<Reader, ReadError> {
    Ok(Reader {
        files: files(path)?.into_iter(),
        first: true,
        current: None,
        last: None,
        notes: Vec::new(),
    })
}

/// Reads every frame of the recording at `path` (small recordings: tests, dumps).
pub fn read_all(path: &Path) -> Result<(Vec<Frame>, Vec<String>), ReadError> {
    let mut reader = open(path)?;
    let frames = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((frames, reader.notes))
}

impl Iterator for Reader {
    type Item = Result<Frame, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let path = self.files.next()?;
                let name = path.display().to_string();
                let file = match File::open(&path) {
                    Ok(f) => f,
                    // A live ring dropped it since it was listed: what it held is lost, and the
                    // next segment is read from its opening state.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.notes.push(format!(
                            "{name}: gone before it could be read (the ring dropped it)"
                        ));
                        self.last = None;
                        continue;
                    }
                    Err(e) => {
                        return Some(Err(ReadError::File {
                            path: name,
                            problem: e.to_string(),
                        }));
                    }
                };
                self.current = Some(Open {
                    name,
                    reader: BufReader::new(MultiGzDecoder::new(file)),
                    line: 0,
                    skip: 0,
                    first: std::mem::take(&mut self.first),
                    before: self.last,
                    segment: None,
                    clean: false,
                    implied: Default::default(),
                });
            }
            let open = self.current.as_mut()?;
            match open.next_frame(&mut self.notes) {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {
                    self.last = open.segment.map(|s| (s, open.clean));
                    self.current = None;
                }
                Err(e) => {
                    self.current = None;
                    self.files = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Open {
    /// The segment's next frame; None at its end.
    fn next_frame(&mut self, notes: &mut Vec<String>) -> Result<Option<Frame>, ReadError> {
        let mut buf = Vec::new();
        loop {
            if let Some(frame) = self.implied.pop_front() {
                return Ok(Some(frame));
            }
            buf.clear();
            self.line += 1;
            let line = self.line;
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    self.clean = true;
                    return Ok(None);
                }
                Ok(_) if buf.last() != Some(&b'\n') => {
                    notes.push(format!(
                        "{}: ends mid-line {line} (the recorder was stopped while writing)",
                        self.name
                    ));
                    return Ok(None);
                }
                Ok(_) => {}
                Err(e) => {
                    notes.push(format!(
                        "{}: torn at line {line} ({e}): the rest of it is lost",
                        self.name
                    ));
                    return Ok(None);
                }
            }
            let fail = |problem: String| ReadError::Line {
                path: self.name.clone(),
                line,
                problem,
            };
            if line == 1 {
                let header: Header = serde_json::from_slice(&buf).map_err(|e| {
                    fail(format!(
                        "not a kube-healer recording (its first line is no header: {e})"
                    ))
                })?;
                if !(1..=VERSION).contains(&header.kube_healer_recording) {
                    return Err(fail(format!(
                        "recording format {} (this kube-healer reads 1 to {VERSION})",
                        header.kube_healer_recording
                    )));
                }
                // The opening restates what the segment before ended with: skipped when that
                // was read whole and this one follows it; otherwise (a segment missing, or cut
                // short) the state is taken from here.
                let follows = self.before == Some((header.segment.wrapping_sub(1), true));
                if !self.first && follows {
                    self.skip = header.snapshot;
                } else {
                    if !self.first {
                        notes.push(format!(
                            "{}: does not follow on from the segment read before it: the state is read again from its opening",
                            self.name
                        ));
                    }
                    self.implied = implied(&header).into();
                }
                self.segment = Some(header.segment);
                continue;
            }
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            let frame: Frame = serde_json::from_slice(&buf).map_err(|e| fail(format!("not a frame: {e}")))?;
            // Unix milliseconds between 1970 and 2999: anything else is no time a watch saw.
            if !(0..32_503_680_000_000).contains(&frame.t) {
                return Err(fail(format!(
                    "frame time {} is not a time (Unix milliseconds)",
                    frame.t
                )));
            }
            return Ok(Some(frame));
        }
    }
}

/// What a segment's format implies about the state it opens with: a recording of format 1 was
/// made before the watches of other tools' maintenance resources, so none were known; its
/// opening lists them empty. (From format 2 on, the recording holds their own frames.)
fn implied(header: &Header) -> Vec<Frame> {
    if header.kube_healer_recording != 1 {
        return Vec::new();
    }
    let list = |w: Watch| {
        [Kind::Init, Kind::InitDone].map(|e| Frame {
            t: header.started,
            w,
            e,
            o: None,
        })
    };
    [Watch::NodeClaims, Watch::Machines, Watch::NodeMaintenances]
        .into_iter()
        .flat_map(list)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::frame::{Kind, Watch};
    use super::super::ring::{Bounds, Ring};
    use super::*;

    /// A segment file whose second line, after a good header, is `line`.
    fn segment_after_header(dir: &Path, name: &str, line: &str) -> PathBuf {
        let path = dir.join(name);
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::default());
        let header = "{\"kube_healer_recording\":1,\"segment\":0,\"snapshot\":0,\"started\":0}";
        std::io::Write::write_all(&mut gz, format!("{header}\n{line}\n").as_bytes()).unwrap();
        gz.finish().unwrap();
        path
    }

    /// A recording of format 1, made before the maintenance resources were watched, opens with
    /// them listed empty (none were known); one of format 2 holds its own frames of them.
    #[test]
    fn a_recording_made_before_the_maintenance_watches_lists_them_empty() {
        let dir = tempfile::tempdir().unwrap();
        let frame = serde_json::to_string(&pod_frame(5, "p", Kind::Apply)).unwrap();
        let v1 = segment_after_header(dir.path(), "00000000.jsonl.gz", &frame);
        let (frames, _) = read_all(&v1).unwrap();
        let implied: Vec<(Watch, Kind)> = frames[..6].iter().map(|f| (f.w, f.e)).collect();
        assert_eq!(implied[0], (Watch::NodeClaims, Kind::Init));
        assert_eq!(implied[5], (Watch::NodeMaintenances, Kind::InitDone));
        assert_eq!(frames.len(), 7, "then the segment's own");
        assert_eq!(frames[6].w, Watch::Pods);

        let v2 = dir.path().join("v2.jsonl.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&v2).unwrap(), flate2::Compression::default());
        let header = "{\"kube_healer_recording\":2,\"segment\":0,\"snapshot\":0,\"started\":0}";
        std::io::Write::write_all(&mut gz, format!("{header}\n{frame}\n").as_bytes()).unwrap();
        gz.finish().unwrap();
        let (frames, _) = read_all(&v2).unwrap();
        assert_eq!(frames.len(), 1, "{frames:?}");
    }

    fn pod_frame(t: i64, name: &str, e: Kind) -> Frame {
        Frame {
            t,
            w: Watch::Pods,
            e,
            o: Some(json!({"metadata": {"name": name, "namespace": "ns"}, "pad": "x".repeat(400)})),
        }
    }

    #[test]
    fn a_ring_keeps_its_bound_and_its_first_segment_starts_from_the_whole_state() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_bytes: 512 * 1024,
            max_age_ms: None,
        };
        let mut ring = Ring::open(dir.path(), bounds, 0).unwrap();
        ring.write(&Frame {
            t: 0,
            w: Watch::Pods,
            e: Kind::Init,
            o: None,
        })
        .unwrap();
        ring.write(&pod_frame(0, "kept", Kind::InitApply)).unwrap();
        ring.write(&Frame {
            t: 0,
            w: Watch::Pods,
            e: Kind::InitDone,
            o: None,
        })
        .unwrap();
        // Enough changes (incompressible names) to go round the ring several times.
        for i in 0..40_000i64 {
            let name = format!("p{}", fastrand::u64(..));
            ring.write(&pod_frame(i, &name, Kind::Apply)).unwrap();
            ring.write(&pod_frame(i, &name, Kind::Delete)).unwrap();
        }
        ring.finish().unwrap();
        let on_disk: u64 = segments_in(dir.path())
            .unwrap()
            .iter()
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= 512 * 1024 + 512 * 1024 / 8, "{on_disk} bytes");
        assert!(
            segments_in(dir.path()).unwrap()[0].0 > 0,
            "the oldest segments went"
        );
        let (frames, notes) = read_all(dir.path()).unwrap();
        // The first segment left opens with the pod listed at the start, long since out of the ring.
        let kept = frames.iter().position(|f| f.key().as_deref() == Some("ns/kept"));
        assert!(kept.is_some_and(|k| k <= 2), "{:?}", &frames[..3]);
        assert_eq!(frames[0].e, Kind::Init);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_missing_segment_is_noted_and_the_next_read_from_its_opening_state() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_bytes: 1 << 30,
            max_age_ms: Some(10_000),
        };
        let mut ring = Ring::open(dir.path(), bounds, 0).unwrap();
        ring.write(&Frame {
            t: 0,
            w: Watch::Pods,
            e: Kind::Init,
            o: None,
        })
        .unwrap();
        ring.write(&pod_frame(0, "a", Kind::InitApply)).unwrap();
        ring.write(&Frame {
            t: 0,
            w: Watch::Pods,
            e: Kind::InitDone,
            o: None,
        })
        .unwrap();
        // Segments of 1.25 s each (an eighth of the age): b in the second, c in the third.
        ring.write(&pod_frame(2_000, "b", Kind::Apply)).unwrap();
        ring.write(&pod_frame(4_000, "c", Kind::Apply)).unwrap();
        ring.finish().unwrap();
        let segments = segments_in(dir.path()).unwrap();
        assert_eq!(segments.len(), 3);
        std::fs::remove_file(&segments[1].1).unwrap();
        let (frames, notes) = read_all(dir.path()).unwrap();
        let keys: Vec<_> = frames.iter().filter_map(Frame::key).collect();
        // b's segment is gone; the third restates a and b, then c.
        assert!(
            keys.contains(&"ns/b".to_string()) && keys.ends_with(&["ns/c".to_string()]),
            "{keys:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("does not follow on")),
            "{notes:?}"
        );
        // A frame whose time is no time is refused, naming the line.
        let bad = segment_after_header(
            dir.path(),
            "t.jsonl.gz",
            "{\"t\":-5,\"w\":\"pods\",\"e\":\"init\"}",
        );
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("line 2: frame time -5 is not a time"), "{e}");
    }

    #[test]
    fn a_torn_segment_ends_quietly_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_bytes: 1 << 30,
            max_age_ms: None,
        };
        let mut ring = Ring::open(dir.path(), bounds, 0).unwrap();
        for i in 0..100 {
            ring.write(&pod_frame(i, &format!("p{i}"), Kind::Apply)).unwrap();
        }
        ring.flush().unwrap();
        for i in 100..5000 {
            ring.write(&pod_frame(i, &format!("p{i}"), Kind::Apply)).unwrap();
        }
        // Killed: what the flush wrote is there, the rest may not be.
        drop(ring);
        let path = segments_in(dir.path()).unwrap()[0].1.clone();
        let (frames, _) = read_all(&path).unwrap();
        assert!(frames.len() >= 100, "{}", frames.len());

        let bad = segment_after_header(dir.path(), "bad.jsonl.gz", "{\"t\":1}");
        let e = read_all(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl.gz: line 2: not a frame"), "{e}");
    }
}
