//! The Wing–Gong linearizability search with Lowe's improvements ("Testing for
//! Linearizability", Lowe 2017; Wing & Gong 1993): operations are linearized just in time
//! from a doubly linked list of call and return entries, and every (set of linearized
//! operations, model state) configuration is remembered so that it is explored once.
//!
//! The list holds each operation's call entry and, later, its return entry, in time order
//! (calls before returns at equal times: such operations are concurrent). The search walks
//! the list: at a call entry it tries to linearize that operation next (the model accepts
//! it and the configuration is new), lifting both its entries out of the list and starting
//! again from the front; at a return entry the operation returning there cannot be delayed
//! further, so the search backtracks. An operation with unknown outcome has its return at
//! +infinity and need not be linearized at all: the search succeeds once every operation
//! that completed is linearized.
//!
//! One reduction beyond Lowe's: operations with unknown outcome that are equal (say two
//! `add(1)`s that timed out) are interchangeable, so of such twins only the earliest
//! invoked one not yet linearized is tried. Swapping two twins in any linearization gives
//! another one (both may complete at +infinity and have the same effect), so no verdict
//! changes; without it a counter history with many unknown adds explores every subset.
//! And a model may name unknown operations that can be left out altogether
//! ([`Model::omittable`]), such as register writes whose value nobody observed.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use crate::Model;
use crate::entry_list::{EntryList, Slot};

/// One operation of a single object's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOp<O> {
    pub op: O,
    pub invoke_ns: u64,
    /// `None`: unknown outcome, completion at +infinity (may also never have happened).
    pub complete_ns: Option<u64>,
}

/// Bounds on one search. Running out is reported as [`SearchOutcome::Unknown`].
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    pub deadline: Option<Instant>,
    /// Model steps tried.
    pub steps_max: u64,
    /// Memory for remembered configurations (each a bitset of the operations and a
    /// state), estimated per entry.
    pub cache_bytes_max: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            deadline: None,
            steps_max: 200_000_000,
            cache_bytes_max: 2 << 30,
        }
    }
}

/// Why a search stopped without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum UnknownReason {
    Timeout,
    StepBudget { steps: u64 },
    CacheFull { states: usize, bytes: usize },
}

/// Where the search failed: the longest linearizable prefix it found, the state after it,
/// the operation that returned while it could not be linearized after that prefix, and
/// the other operations that were candidates at that point. Indices are into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample<S> {
    pub prefix: Vec<usize>,
    pub state: S,
    pub stuck: usize,
    pub candidates: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchOutcome<S> {
    Linearizable,
    NotLinearizable(Counterexample<S>),
    Unknown(UnknownReason),
}

impl<S> SearchOutcome<S> {
    /// The same outcome with the counterexample's state transformed.
    pub fn map_state<T>(self, f: impl FnOnce(S) -> T) -> SearchOutcome<T> {
        match self {
            SearchOutcome::Linearizable => SearchOutcome::Linearizable,
            SearchOutcome::Unknown(reason) => SearchOutcome::Unknown(reason),
            SearchOutcome::NotLinearizable(c) => SearchOutcome::NotLinearizable(Counterexample {
                prefix: c.prefix,
                state: f(c.state),
                stuck: c.stuck,
                candidates: c.candidates,
            }),
        }
    }
}

/// Search effort, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SearchStats {
    pub steps: u64,
    pub states: usize,
}

struct Bitset(Vec<u64>);

impl Bitset {
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Decides whether `ops` (one object's history) is linearizable with respect to `model`.
pub fn check_wgl<M: Model>(
    model: &M,
    ops: &[TimedOp<M::Op>],
    limits: &SearchLimits,
) -> (SearchOutcome<M::State>, SearchStats) {
    let left_out = model.omittable(ops);
    let mut search = Search {
        model,
        ops,
        list: EntryList::new(ops, &left_out),
        linearized: Bitset(vec![0; ops.len().div_ceil(64)]),
        cache: HashSet::new(),
        stack: Vec::new(),
        state: model.init(),
        must_linearize: ops.iter().filter(|op| op.complete_ns.is_some()).count(),
        twin_before: earlier_unknown_twins(ops, &left_out),
        stats: SearchStats::default(),
        deepest: None,
    };
    let outcome = search.run(limits);
    search.stats.states = search.cache.len();
    (outcome, search.stats)
}

/// The search's state: the entry list with the linearized operations lifted out, the
/// stack of linearized call entries (each with the state before it), the current state.
struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [TimedOp<M::Op>],
    list: EntryList,
    linearized: Bitset,
    cache: HashSet<(Box<[u64]>, M::State)>,
    stack: Vec<(usize, M::State)>,
    state: M::State,
    /// Operations that completed and are not linearized yet.
    must_linearize: usize,
    twin_before: Vec<Option<usize>>,
    stats: SearchStats,
    deepest: Option<Counterexample<M::State>>,
}

impl<M: Model> Search<'_, M> {
    fn run(&mut self, limits: &SearchLimits) -> SearchOutcome<M::State> {
        let mut entry = self.list.first();
        loop {
            if self.must_linearize == 0 {
                return SearchOutcome::Linearizable;
            }
            self.stats.steps += 1;
            let entry_bytes = self.cache_entry_bytes();
            if let Some(reason) = out_of_budget(&self.stats, self.cache.len(), entry_bytes, limits)
            {
                return SearchOutcome::Unknown(reason);
            }
            entry = match self.list.slots[entry] {
                Slot::Call { op, ret } => self.try_linearize(entry, op, ret),
                Slot::Return { op } => match self.backtrack(entry, op) {
                    Some(next) => next,
                    None => {
                        let found = self.deepest.take().expect("recorded by backtrack");
                        return SearchOutcome::NotLinearizable(found);
                    }
                },
                Slot::Head => unreachable!("the head is never visited"),
            };
        }
    }

    /// Tries `op` as the next linearized operation; returns the entry to visit next.
    fn try_linearize(&mut self, entry: usize, op: usize, ret: usize) -> usize {
        if self.twin_before[op].is_some_and(|twin| !self.linearized.get(twin)) {
            return self.list.next[entry];
        }
        let Some(next_state) = self.model.step(&self.state, &self.ops[op].op) else {
            return self.list.next[entry];
        };
        self.linearized.set(op);
        let key = (
            self.linearized.0.clone().into_boxed_slice(),
            next_state.clone(),
        );
        if !self.cache.insert(key) {
            self.linearized.clear(op);
            return self.list.next[entry];
        }
        let before = std::mem::replace(&mut self.state, next_state);
        self.stack.push((entry, before));
        self.list.lift(entry, ret);
        if self.ops[op].complete_ns.is_some() {
            self.must_linearize -= 1;
        }
        self.list.first()
    }

    /// `op` returns at `entry` unlinearized: undoes the last linearized operation and
    /// returns the entry after it, or `None` when there is nothing left to undo.
    fn backtrack(&mut self, entry: usize, op: usize) -> Option<usize> {
        if self
            .deepest
            .as_ref()
            .is_none_or(|d| self.stack.len() > d.prefix.len())
        {
            self.deepest = Some(Counterexample {
                prefix: self.stack.iter().map(|(e, _)| self.call_op(*e)).collect(),
                state: self.state.clone(),
                stuck: op,
                candidates: self.list.calls_before(entry),
            });
        }
        let (call, before) = self.stack.pop()?;
        let Slot::Call { op, ret } = self.list.slots[call] else {
            unreachable!("only call entries are pushed");
        };
        self.list.unlift(call, ret);
        self.linearized.clear(op);
        if self.ops[op].complete_ns.is_some() {
            self.must_linearize += 1;
        }
        self.state = before;
        Some(self.list.next[call])
    }

    /// Estimated memory of one remembered configuration: its bitset, the tuple and the
    /// hash table's per-entry overhead.
    fn cache_entry_bytes(&self) -> usize {
        self.linearized.0.len() * 8 + std::mem::size_of::<(Box<[u64]>, M::State)>() + 16
    }

    fn call_op(&self, node: usize) -> usize {
        match self.list.slots[node] {
            Slot::Call { op, .. } => op,
            _ => unreachable!("only call entries are pushed"),
        }
    }
}

/// For each operation with unknown outcome, the latest operation invoked before it that is
/// equal and also unknown.
fn earlier_unknown_twins<O: PartialEq>(
    ops: &[TimedOp<O>],
    left_out: &[bool],
) -> Vec<Option<usize>> {
    let mut unknown: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].complete_ns.is_none() && !left_out[i])
        .collect();
    unknown.sort_by_key(|&i| (ops[i].invoke_ns, i));
    let mut twin = vec![None; ops.len()];
    for (at, &i) in unknown.iter().enumerate() {
        twin[i] = unknown[..at]
            .iter()
            .rev()
            .find(|&&j| ops[j].op == ops[i].op)
            .copied();
    }
    twin
}

fn out_of_budget(
    stats: &SearchStats,
    states: usize,
    entry_bytes: usize,
    limits: &SearchLimits,
) -> Option<UnknownReason> {
    if stats.steps > limits.steps_max {
        return Some(UnknownReason::StepBudget {
            steps: limits.steps_max,
        });
    }
    let bytes = states.saturating_mul(entry_bytes);
    if bytes > limits.cache_bytes_max {
        return Some(UnknownReason::CacheFull { states, bytes });
    }
    if stats.steps % 4096 == 1
        && let Some(deadline) = limits.deadline
        && Instant::now() >= deadline
    {
        return Some(UnknownReason::Timeout);
    }
    None
}
