//! Sequential specifications the linearizability checkers test against: a [`Model`] trait
//! and the register and counter models.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use crate::TimedOp;

/// A deterministic sequential specification. Operations carry their recorded output; an
/// operation whose outcome is unknown carries none, and its step must then never fail
/// (it only applies its effect), so that it can always be placed last or left out.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Clone + Debug + PartialEq;

    fn init(&self) -> Self::State;

    /// The state after `op` runs in `state`, or `None` when `op`'s recorded output cannot
    /// be produced from `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// Operations with unknown outcome the search may leave out: whenever the history is
    /// linearizable, it has a linearization without them. By default none.
    fn omittable(&self, ops: &[TimedOp<Self::Op>]) -> Vec<bool> {
        vec![false; ops.len()]
    }
}

/// A register operation as the checker sees it. Reads whose outcome is unknown constrain
/// nothing and are left out; failed operations took no effect and are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// An ok read that returned `seen` (`None`: absent).
    Read { seen: Option<i64> },
    /// A write, acknowledged or unknown.
    Write { value: i64 },
    /// An acknowledged compare-and-set: it applied, so the value was `expected`.
    CasOk { expected: Option<i64>, new: i64 },
    /// A compare-and-set with unknown outcome: applies if the value is `expected`.
    CasUnknown { expected: Option<i64>, new: i64 },
}

/// A register holding an integer, initially absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<i64>;
    type Op = RegisterOp;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, op: &RegisterOp) -> Option<Option<i64>> {
        match *op {
            RegisterOp::Read { seen } => (seen == *state).then_some(*state),
            RegisterOp::Write { value } => Some(Some(value)),
            RegisterOp::CasOk { expected, new } => (expected == *state).then_some(Some(new)),
            RegisterOp::CasUnknown { expected, new } => Some(if expected == *state {
                Some(new)
            } else {
                *state
            }),
        }
    }

    /// Unknown writes (and compare-and-sets) of a value that no ok read returned and no
    /// compare-and-set expected. Take a linearization that places such a write `w`: until
    /// the next write that takes effect, nothing reads `w` or compares against it, so the
    /// operations there are writes and unknown compare-and-sets that did not apply; drop
    /// `w` and those (all unknown) and the rest still checks out. Without this, every
    /// subset of such writes is a distinct configuration to the search.
    fn omittable(&self, ops: &[TimedOp<RegisterOp>]) -> Vec<bool> {
        let mut observed = HashSet::new();
        for op in ops {
            match op.op {
                RegisterOp::Read { seen: Some(v) } => {
                    observed.insert(v);
                }
                RegisterOp::CasOk {
                    expected: Some(v), ..
                }
                | RegisterOp::CasUnknown {
                    expected: Some(v), ..
                } => {
                    observed.insert(v);
                }
                _ => {}
            }
        }
        ops.iter()
            .map(|op| {
                op.complete_ns.is_none()
                    && match op.op {
                        RegisterOp::Write { value } => !observed.contains(&value),
                        RegisterOp::CasUnknown { new, .. } => !observed.contains(&new),
                        _ => false,
                    }
            })
            .collect()
    }
}

/// A counter operation as the checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterOp {
    /// An ok read that returned `seen` (absent reads as 0).
    Read { seen: i64 },
    /// An add; `returned` is the new value an ok add reported (`None`: unknown outcome or
    /// not recorded).
    Add { delta: i64, returned: Option<i64> },
}

/// A counter, initially 0 (an absent key counts as 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterModel;

impl Model for CounterModel {
    type State = i64;
    type Op = CounterOp;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, op: &CounterOp) -> Option<i64> {
        match *op {
            CounterOp::Read { seen } => (seen == *state).then_some(*state),
            CounterOp::Add { delta, returned } => {
                let next = state.wrapping_add(delta);
                returned.is_none_or(|r| r == next).then_some(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_steps() {
        let m = RegisterModel;
        assert_eq!(m.step(&None, &RegisterOp::Read { seen: None }), Some(None));
        assert_eq!(m.step(&None, &RegisterOp::Read { seen: Some(1) }), None);
        assert_eq!(
            m.step(&None, &RegisterOp::Write { value: 1 }),
            Some(Some(1))
        );
        let cas = RegisterOp::CasOk {
            expected: Some(1),
            new: 2,
        };
        assert_eq!(m.step(&Some(1), &cas), Some(Some(2)));
        assert_eq!(m.step(&Some(3), &cas), None);
        let maybe = RegisterOp::CasUnknown {
            expected: Some(1),
            new: 2,
        };
        assert_eq!(m.step(&Some(3), &maybe), Some(Some(3)));
    }

    #[test]
    fn counter_steps() {
        let m = CounterModel;
        let add = |delta, returned| CounterOp::Add { delta, returned };
        assert_eq!(m.step(&0, &add(2, Some(2))), Some(2));
        assert_eq!(m.step(&1, &add(2, Some(2))), None);
        assert_eq!(m.step(&1, &add(2, None)), Some(3));
        assert_eq!(m.step(&3, &CounterOp::Read { seen: 3 }), Some(3));
        assert_eq!(m.step(&3, &CounterOp::Read { seen: 2 }), None);
    }
}
