//! The verdict every checker returns.

use serde::{Deserialize, Serialize};

/// A checker's verdict. `Unknown` (the checker ran out of time or lacked the data to
/// decide) is never a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

impl Verdict {
    /// The verdict of two checks together: any failure fails, else any unknown is unknown.
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Pass,
        }
    }

    /// Fail if there are violations, else unknown if something could not be decided.
    pub fn from_counts(violations: usize, undecided: usize) -> Verdict {
        if violations > 0 {
            Verdict::Fail
        } else if undecided > 0 {
            Verdict::Unknown
        } else {
            Verdict::Pass
        }
    }
}
