//! The flight recorder and replay. The recorder writes what the watches deliver (Pods, Nodes,
//! Events, node Leases, Namespaces, HealingPolicies), trimmed to what kube-healer reads, with
//! the time each came, to a bounded ring of compressed segments. Replay feeds a recording to
//! the real engine on a manual clock and notes what it decides.
//!
//! The recorder is fed by the operator's own watches (`--flight-recorder`, a tee between them and
//! the engine) or by `kube-healer record` (the same watches, no engine): no list or get of its
//! own. Writing happens on a thread of its own: the operator never waits for the disk; a frame
//! that finds the queue full is dropped and logged (the recording then misses that change:
//! what the next change or list of the object shows puts it right).

pub mod frame;
mod marks;
pub mod read;
pub mod replay;
pub mod ring;
pub mod trim;

use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::watch::Change;
pub use frame::{Frame, Kind, Watch};
pub use ring::{Bounds, Ring};

/// Frames waiting for the disk.
const QUEUE: usize = 16_384;

/// A recorder's writing thread.
pub struct Recorder {
    frames: SyncSender<Frame>,
    clock: Arc<dyn Clock>,
    dropped: u64,
    thread: std::thread::JoinHandle<std::io::Result<u64>>,
}

impl Recorder {
    /// Starts writing to `ring` on a thread of its own.
    pub fn start(ring: Ring, clock: Arc<dyn Clock>) -> Recorder {
        let (frames, rx) = std::sync::mpsc::sync_channel::<Frame>(QUEUE);
        let thread = std::thread::spawn(move || write_loop(ring, rx));
        Recorder {
            frames,
            clock,
            dropped: 0,
            thread,
        }
    }

    /// Records a change as it is now (HealingActions are left out).
    pub fn note(&mut self, change: &Change) {
        let Some(frame) = Frame::of(change, self.clock.now_ms()) else {
            return;
        };
        match self.frames.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped = self.dropped,
                        "the flight recorder falls behind: frames dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
            }
        }
    }

    /// Stops, finishing the segment being written. Returns the bytes on disk.
    pub fn finish(self) -> std::io::Result<u64> {
        let dropped = self.dropped;
        drop(self.frames);
        let bytes = self
            .thread
            .join()
            .map_err(|_| std::io::Error::other("the recorder's thread panicked"))??;
        if dropped > 0 {
            tracing::warn!(dropped, "the flight recorder dropped frames");
        }
        Ok(bytes)
    }
}

fn write_loop(mut ring: Ring, rx: std::sync::mpsc::Receiver<Frame>) -> std::io::Result<u64> {
    let mut flushed = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(frame) => {
                if let Err(e) = ring.write(&frame) {
                    tracing::error!(error = %e, "the flight recorder cannot write: it stops");
                    return Err(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                ring.finish()?;
                return Ok(ring.bytes());
            }
        }
        // At most a second of frames is lost if the process is killed.
        if flushed.elapsed() >= Duration::from_secs(1) {
            ring.flush()?;
            flushed = Instant::now();
        }
    }
}

/// Forwards the watches' changes to the engine, recording each on the way.
pub fn tee(mut from: mpsc::Receiver<Change>, to: mpsc::Sender<Change>, mut recorder: Recorder) {
    tokio::spawn(async move {
        while let Some(change) = from.recv().await {
            recorder.note(&change);
            if to.send(change).await.is_err() {
                break;
            }
        }
        if let Err(e) = tokio::task::spawn_blocking(move || recorder.finish()).await {
            tracing::warn!(error = %e, "finishing the flight recording failed");
        }
    });
}
