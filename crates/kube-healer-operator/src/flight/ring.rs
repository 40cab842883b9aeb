//! The recording on disk: a ring of gzip segments in one directory, bounded by size and age.
//!
//! Each segment is self-contained: it begins with the state of every watch at that moment (the
//! recorder's own trimmed copy, no list from the API server) so that when the oldest segments
//! go, the first one left still starts from a whole cluster. A reader that has read the segment
//! before skips that opening state; one that starts at it replays from it.
//!
//! Segments are flushed every second: a recorder that is killed loses at most that second (the
//! reader stops quietly at a segment's torn end).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::frame::{Frame, Kind, Watch};

/// How big and how old a recording may grow.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// The whole ring, compressed.
    pub max_bytes: u64,
    /// Segments ended longer ago than this go (None: only size counts).
    pub max_age_ms: Option<i64>,
}

impl Bounds {
    /// One segment: an eighth of the ring (or of its age), so that dropping the oldest frees
    /// an eighth at a time.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).max(64 * 1024)
    }

    fn segment_ms(&self) -> Option<i64> {
        self.max_age_ms.map(|a| (a / 8).max(1_000))
    }
}

/// A segment's first line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub kube_healer_recording: u32,
    pub segment: u64,
    /// How many frames after the header restate the state at the segment's start.
    pub snapshot: usize,
    /// When the segment began (Unix ms).
    pub started: i64,
}

/// 2: the watches of other tools' maintenance resources are recorded (1 had none).
pub const VERSION: u32 = 2;
const SUFFIX: &str = ".jsonl.gz";

/// The objects each watch holds now, as trimmed JSON lines keyed by namespace/name.
#[derive(Default)]
struct State {
    live: BTreeMap<Watch, HashMap<String, Box<str>>>,
    /// A list in progress: it replaces its watch's objects when it is done.
    listing: HashMap<Watch, HashMap<String, Box<str>>>,
}

impl State {
    fn note(&mut self, frame: &Frame, object: Option<Box<str>>) {
        let key = frame.key();
        match (frame.e, key, object) {
            (Kind::Init, ..) => {
                self.listing.insert(frame.w, HashMap::new());
            }
            (Kind::InitApply, Some(k), Some(o)) => {
                self.listing.entry(frame.w).or_default().insert(k, o);
            }
            (Kind::InitDone, ..) => {
                let listed = self.listing.remove(&frame.w).unwrap_or_default();
                self.live.insert(frame.w, listed);
            }
            (Kind::Apply, Some(k), Some(o)) => {
                self.live.entry(frame.w).or_default().insert(k, o);
            }
            (Kind::Delete, Some(k), _) => {
                if let Some(objects) = self.live.get_mut(&frame.w) {
                    objects.remove(&k);
                }
            }
            _ => {}
        }
    }

    /// The frames that restate it at `t`: for each watch that has listed, its list.
    fn frames(&self, t: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (watch, objects) in &self.live {
            let restate = |e: Kind, o: Option<&str>| line(t, *watch, e, o);
            out.push(restate(Kind::Init, None));
            out.extend(objects.values().map(|o| restate(Kind::InitApply, Some(o))));
            out.push(restate(Kind::InitDone, None));
        }
        out
    }

    /// Bytes held (for the recorder's memory figure).
    fn bytes(&self) -> usize {
        self.live
            .values()
            .chain(self.listing.values())
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum()
    }
}

/// A frame's line, its object already serialized (each object is serialized once, for the
/// line and the recorder's copy of the state alike): `{"t":..,"w":..,"e":..}` with the object
/// spliced in as the last field.
fn line(t: i64, w: Watch, e: Kind, o: Option<&str>) -> String {
    let head = serde_json::to_string(&Frame { t, w, e, o: None }).unwrap_or_default();
    match o {
        Some(o) => format!("{},\"o\":{o}}}", &head[..head.len() - 1]),
        None => head,
    }
}

/// Counts what reaches the file.
struct Counting {
    file: BufWriter<File>,
    bytes: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

struct Segment {
    index: u64,
    started: i64,
    out: GzEncoder<Counting>,
    /// Compressed bytes of its header and opening state (not counted against its size).
    opening: u64,
}

/// The ring's writer.
pub struct Ring {
    dir: PathBuf,
    bounds: Bounds,
    state: State,
    current: Option<Segment>,
    /// Closed segments, oldest first: (index, when it ended, compressed bytes).
    closed: Vec<(u64, i64, u64)>,
    next_index: u64,
    /// This process continues a recording another process wrote: what its watches showed is
    /// unknown from the gap on, until they have listed again (said in the first segment).
    continues: bool,
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}{SUFFIX}"))
}

/// The segments in a directory, oldest first.
pub fn segments_in(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(index) = name.strip_suffix(SUFFIX).and_then(|i| i.parse::<u64>().ok()) {
            out.push((index, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Ring {
    /// Opens (creates) the directory; a recording already there is continued after its last
    /// segment and counted in the bounds.
    pub fn open(dir: &Path, bounds: Bounds, now_ms: i64) -> io::Result<Ring> {
        std::fs::create_dir_all(dir)?;
        let mut closed = Vec::new();
        for (index, path) in segments_in(dir)? {
            let meta = std::fs::metadata(&path)?;
            // When it was last written: its age counts from there, not from this restart.
            let ended = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now_ms, |d| d.as_millis() as i64);
            closed.push((index, ended, meta.len()));
        }
        let next_index = closed.last().map_or(0, |(i, ..)| i + 1);
        Ok(Ring {
            dir: dir.to_path_buf(),
            bounds,
            state: State::default(),
            current: None,
            continues: !closed.is_empty(),
            closed,
            next_index,
        })
    }

    /// Writes a frame, beginning a new segment when the current one is full or old enough.
    pub fn write(&mut self, frame: &Frame) -> io::Result<()> {
        let object = frame
            .o
            .as_ref()
            .map(|o| serde_json::to_string(o).unwrap_or_default());
        let line = line(frame.t, frame.w, frame.e, object.as_deref());
        self.state.note(frame, object.map(Box::from));
        let full = self.current.as_ref().is_none_or(|s| {
            s.out.get_ref().bytes.saturating_sub(s.opening) >= self.bounds.segment_bytes()
                || self
                    .bounds
                    .segment_ms()
                    .is_some_and(|ms| frame.t - s.started >= ms)
        });
        if full {
            self.rotate(frame.t)?;
        }
        let Some(segment) = self.current.as_mut() else {
            return Err(io::Error::other("no segment open"));
        };
        segment.out.write_all(line.as_bytes())?;
        segment.out.write_all(b"\n")
    }

    /// Makes what was written readable (a sync flush of the compressor).
    pub fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some(s) => s.out.flush(),
            None => Ok(()),
        }
    }

    /// Ends the current segment cleanly.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(s) = self.current.take() {
            let counting = s.out.finish()?;
            let bytes = counting.bytes;
            counting
                .file
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
            self.closed.push((s.index, s.started, bytes));
        }
        Ok(())
    }

    /// Compressed bytes on disk (closed segments and the current one so far).
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|(.., b)| b).sum::<u64>()
            + self.current.as_ref().map_or(0, |s| s.out.get_ref().bytes)
    }

    /// Bytes of the recorder's copy of the cluster's state.
    pub fn state_bytes(&self) -> usize {
        self.state.bytes()
    }

    fn rotate(&mut self, t: i64) -> io::Result<()> {
        if let Some(s) = self.current.take() {
            let counting = s.out.finish()?;
            let bytes = counting.bytes;
            counting.file.into_inner().map_err(|e| e.into_error())?;
            self.closed.push((s.index, t, bytes));
        }
        // The frame being written is already in the state: the opening restates it too, and a
        // reader that skips the opening reads it again as a change (an Apply is idempotent).
        let snapshot = self.state.frames(t);
        let index = self.next_index;
        self.next_index += 1;
        let file = File::create(segment_path(&self.dir, index))?;
        let mut out = GzEncoder::new(
            Counting {
                file: BufWriter::new(file),
                bytes: 0,
            },
            Compression::default(),
        );
        let header = Header {
            kube_healer_recording: VERSION,
            segment: index,
            snapshot: snapshot.len(),
            started: t,
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&header).map_err(io::Error::other)?
        )?;
        for line in snapshot {
            writeln!(out, "{line}")?;
        }
        // A new process continuing a recording: every watch failed in the gap (a replay decides
        // nothing on what it last saw until they have listed again).
        if std::mem::take(&mut self.continues) {
            for w in Watch::ALL {
                let failed = Frame {
                    t,
                    w,
                    e: Kind::Failed,
                    o: None,
                };
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&failed).map_err(io::Error::other)?
                )?;
            }
        }
        out.flush()?;
        let opening = out.get_ref().bytes;
        if opening > self.bounds.segment_bytes() {
            tracing::warn!(
                opening,
                segment = self.bounds.segment_bytes(),
                "the cluster's state is larger than a segment of the flight recorder: give it more room"
            );
        }
        self.current = Some(Segment {
            index,
            started: t,
            out,
            opening,
        });
        self.drop_oldest(t)
    }

    /// Drops the oldest closed segments while the ring is over its size, or they are too old.
    fn drop_oldest(&mut self, now: i64) -> io::Result<()> {
        let closed = |ring: &Ring| ring.closed.iter().map(|(.., b)| b).sum::<u64>();
        while let Some(&(index, ended, _)) = self.closed.first() {
            // Room for the segment being written to grow to its size.
            let opening = self.current.as_ref().map_or(0, |s| s.opening);
            let too_big = closed(self) + opening + self.bounds.segment_bytes() > self.bounds.max_bytes;
            let too_old = self.bounds.max_age_ms.is_some_and(|age| now - ended > age);
            if !too_big && !too_old {
                break;
            }
            match std::fs::remove_file(segment_path(&self.dir, index)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.closed.remove(0);
        }
        Ok(())
    }
}
