//! Test hooks, set by environment variable, that hold the operator at one point so that a test on
//! the real cluster can change the world meanwhile, or end it there. Off unless
//! `KUBE_HEALER_FAILPOINT` names the point.
//!
//! - `before-recheck` (pause): a decision waits right before its recheck, as in a queue or on
//!   retries.
//! - `slow-node-list` (pause): the node watch's first list stalls after it began, as on a large
//!   cluster or a slow API server, while every other watch lists.
//! - `after-record` (abort): the process ends right after a decision is recorded, before its call.
//! - `after-call` (abort): the process ends right after a decision's call, before its outcome is
//!   recorded.

fn named(name: &str) -> bool {
    static FAILPOINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FAILPOINT
        .get_or_init(|| std::env::var("KUBE_HEALER_FAILPOINT").ok())
        .as_deref()
        == Some(name)
}

/// At point `name`, waits `KUBE_HEALER_FAILPOINT_PAUSE_SECONDS` (default 10).
pub async fn pause(name: &str) {
    if !named(name) {
        return;
    }
    let secs = std::env::var("KUBE_HEALER_FAILPOINT_PAUSE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    tracing::warn!(failpoint = name, secs, "failpoint reached: pausing");
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

/// At point `name`, aborts the process.
pub fn abort(name: &str) {
    if named(name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
