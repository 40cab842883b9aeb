//! Record names and label values. A record's name is derived from its decision, so a decision
//! recorded once (by this replica before a crash, or by a previous leader) is recognised, and
//! never carried out again.

/// The record name of a decision: policy, target UID, failure episode, step and attempt (and the
/// hold's reason, for a decision held back).
pub fn record_name(
    policy: &str,
    uid: &str,
    episode: i64,
    step: usize,
    attempt: u32,
    hold: Option<&str>,
) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (uid, episode, step, attempt, hold).hash(&mut h);
    let prefix: String = policy.chars().take(200).collect();
    format!("{prefix}-{:016x}", h.finish())
}

/// A text made fit for a label value: at most 63 characters, alphanumeric at both ends.
pub fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}
