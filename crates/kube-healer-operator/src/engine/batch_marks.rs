//! Batch records still marked in flight, with the decisions each names. A decision a marked
//! batch names, made again (a process that ended left the batch cut short), is taken up under
//! that batch: the executor groups it with the batch's other pods and no others, so that the
//! same pods make the same batch name whatever else comes due with them.

use std::collections::HashMap;

use kube_healer_core::view::Secs;

/// One marked batch: its policy label, until when it may run, and the decision names it holds.
struct Mark {
    policy: String,
    until: Secs,
    members: Vec<String>,
}

/// Bounded by the batch records marked in flight (each at most `MAX_MEMBERS` pods).
#[derive(Default)]
pub(super) struct BatchMarks {
    marks: HashMap<String, Mark>,
    /// Member decision name -> the marked batch naming it.
    batch_of: HashMap<String, String>,
}

impl BatchMarks {
    /// The batch `name` marked in flight until `until`, naming the decisions `members`.
    pub fn mark(&mut self, name: &str, policy: &str, until: Secs, members: Vec<String>) {
        self.unmark(name);
        for m in &members {
            self.batch_of.insert(m.clone(), name.to_string());
        }
        let mark = Mark {
            policy: policy.to_string(),
            until,
            members,
        };
        self.marks.insert(name.to_string(), mark);
    }

    /// The batch `name` no longer marked (finished, or its record gone). A member another marked
    /// batch names too answers to that one now.
    pub fn unmark(&mut self, name: &str) {
        let Some(mark) = self.marks.remove(name) else {
            return;
        };
        for m in &mark.members {
            if self.batch_of.get(m).is_none_or(|b| b != name) {
                continue;
            }
            match self.marks.iter().find(|(_, o)| o.members.contains(m)) {
                Some((other, _)) => self.batch_of.insert(m.clone(), other.clone()),
                None => self.batch_of.remove(m),
            };
        }
    }

    /// The marked batch `name`'s policy label.
    pub fn policy(&self, name: &str) -> Option<&str> {
        self.marks.get(name).map(|m| m.policy.as_str())
    }

    /// Every marked batch: (name, policy label, until).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Secs)> {
        self.marks
            .iter()
            .map(|(n, m)| (n.as_str(), m.policy.as_str(), m.until))
    }

    /// The marked batch that names the decision `member`, if any.
    pub fn batch_of(&self, member: &str) -> Option<&str> {
        self.batch_of.get(member).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_member_answers_to_its_batch_until_the_batch_is_unmarked() {
        let mut marks = BatchMarks::default();
        marks.mark("b1", "p", 30, names(&["d1", "d2"]));
        assert_eq!(marks.batch_of("d1"), Some("b1"));
        assert_eq!(marks.policy("b1"), Some("p"));
        marks.unmark("b1");
        assert_eq!(marks.batch_of("d1"), None);
        assert_eq!(marks.iter().count(), 0);
    }

    #[test]
    fn a_member_two_marked_batches_name_answers_to_the_one_still_marked() {
        let mut marks = BatchMarks::default();
        marks.mark("b1", "p", 30, names(&["d1", "d2"]));
        marks.mark("b2", "p", 60, names(&["d2", "d3"]));
        // The newer one goes first: d2 answers to the older, still marked.
        marks.unmark("b2");
        assert_eq!(marks.batch_of("d2"), Some("b1"));
        marks.mark("b2", "p", 60, names(&["d2", "d3"]));
        marks.unmark("b1");
        assert_eq!(marks.batch_of("d1"), None);
        assert_eq!(marks.batch_of("d2"), Some("b2"));
        // Marked again with fewer members: those left out answer to nothing.
        marks.mark("b2", "p", 60, names(&["d3"]));
        assert_eq!(marks.batch_of("d2"), None);
        assert_eq!(marks.batch_of("d3"), Some("b2"));
    }
}
