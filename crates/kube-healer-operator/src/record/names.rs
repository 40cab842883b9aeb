//! Record names and label values. A record's name is derived from its decision, so a decision
//! recorded once (by this replica before a crash, or by a previous leader) is recognised, and
//! never carried out again. So the name must be the same on every build and every replica: it
//! comes from SipHash-1-3 with zero keys written out here (what std's `DefaultHasher` computes
//! today, which std does not promise to keep), over the decision's fields in a fixed encoding.

/// Which ladder a decision is on: a dry run's steps are its own, and never those of the live
/// ladder (a policy switched to live starts at step 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Live,
    DryRun,
}

impl Mode {
    pub fn of(dry_run: bool) -> Self {
        if dry_run { Mode::DryRun } else { Mode::Live }
    }
}

/// The record name of a decision: policy, target UID, failure episode, step and attempt (and the
/// hold's reason, for a decision held back), and whether it is a dry run. Always a valid object
/// name (a DNS subdomain of at most 253 characters) when the policy's name is one.
pub fn record_name(
    policy: &str,
    uid: &str,
    episode: i64,
    step: usize,
    attempt: u32,
    hold: Option<&str>,
    mode: Mode,
) -> String {
    let mut bytes = Vec::with_capacity(uid.len() + 48);
    // The encoding of std's Hash for (&str, i64, usize, u32, Option<&str>) on 64-bit
    // little-endian targets: a str is its bytes and 0xff, an Option its discriminant as an isize.
    let text = |bytes: &mut Vec<u8>, s: &str| {
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0xff);
    };
    text(&mut bytes, uid);
    bytes.extend_from_slice(&episode.to_le_bytes());
    bytes.extend_from_slice(&(step as u64).to_le_bytes());
    bytes.extend_from_slice(&attempt.to_le_bytes());
    match hold {
        None => bytes.extend_from_slice(&0i64.to_le_bytes()),
        Some(reason) => {
            bytes.extend_from_slice(&1i64.to_le_bytes());
            text(&mut bytes, reason);
        }
    }
    // Live decisions keep the names they always had; a dry run's differ.
    if mode == Mode::DryRun {
        bytes.extend_from_slice(b"dry-run");
    }
    format!("{}-{:016x}", prefix(policy), siphash13(&bytes))
}

/// The record name of a batch: its policy and its members' own decisions' names (the same
/// members make the same name, whatever their order).
pub fn batch_name<'a>(policy: &str, members: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = members.into_iter().collect();
    names.sort_unstable();
    let mut bytes = b"batch".to_vec();
    for name in names {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0xff);
    }
    format!("{}-b{:016x}", prefix(policy), siphash13(&bytes))
}

/// The policy's name as a record name's prefix: at most 200 characters, never ending in '-' or
/// '.' (cut short, "x.-" is no DNS subdomain).
fn prefix(policy: &str) -> String {
    let prefix: String = policy.chars().take(200).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    if prefix.is_empty() {
        "healingaction".to_string()
    } else {
        prefix.to_string()
    }
}

/// SipHash-1-3 with both keys zero.
fn siphash13(data: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575u64,
        0x646f_7261_6e64_6f6du64,
        0x6c79_6765_6e65_7261u64,
        0x7465_6462_7974_6573u64,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        v[3] ^= m;
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let m = u64::from_le_bytes(last) | ((data.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..3 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
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

#[cfg(test)]
mod tests {
    use std::hash::{Hash, Hasher};

    use super::*;

    /// The names records were given so far (std's DefaultHasher of the same fields): a new build
    /// finds the decisions recorded by an older one.
    fn by_default_hasher(uid: &str, episode: i64, step: usize, attempt: u32, hold: Option<&str>) -> u64 {
        #[allow(deprecated)]
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (uid, episode, step, attempt, hold).hash(&mut h);
        h.finish()
    }

    #[test]
    fn names_are_those_of_earlier_builds_and_fixed_from_now_on() {
        for (uid, episode, step, attempt, hold) in [
            ("", 0, 0, 0, None),
            ("0b6f3c2e-1d2c-4e5f-8a9b-0c1d2e3f4a5b", 1_800_000_000, 0, 1, None),
            ("u", -5, 3, 7, Some("Cooldown")),
            (
                "a-much-longer-uid-than-usual-to-cross-several-blocks",
                42,
                1,
                2,
                Some(""),
            ),
        ] {
            let name = record_name("p", uid, episode, step, attempt, hold, Mode::Live);
            let expected = format!("p-{:016x}", by_default_hasher(uid, episode, step, attempt, hold));
            assert_eq!(name, expected, "{uid} {episode} {step} {attempt} {hold:?}");
        }
        // Fixed: written down once, so a change of algorithm cannot pass unnoticed.
        let live = |hold| record_name("p", "u", 1_800_000_000, 0, 1, hold, Mode::Live);
        assert_eq!(live(None), "p-edae58a54c88f0ec");
        assert_ne!(live(None), live(Some("Cooldown")));
        let dry = record_name("p", "u", 1_800_000_000, 0, 1, None, Mode::DryRun);
        assert_ne!(dry, live(None), "a dry run is never taken for the live decision");
    }

    #[test]
    fn a_batch_is_named_by_its_members_in_any_order() {
        let a = batch_name("p", ["p-1", "p-2", "p-3"]);
        assert_eq!(a, batch_name("p", ["p-3", "p-1", "p-2"]));
        assert_ne!(a, batch_name("p", ["p-1", "p-2"]));
        assert!(a.starts_with("p-b") && a.len() == "p-b".len() + 16, "{a}");
    }

    #[test]
    fn a_long_policy_name_still_makes_a_valid_name() {
        let policy = format!("{}.-x", "a".repeat(199));
        let name = record_name(&policy, "u", 1, 0, 1, None, Mode::Live);
        assert!(name.len() <= 253, "{}", name.len());
        let (prefix, hash) = name.rsplit_once('-').unwrap();
        assert_eq!(prefix, "a".repeat(199), "the cut does not end in '.' or '-'");
        assert_eq!(hash.len(), 16);
    }
}
