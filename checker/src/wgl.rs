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
    /// Configurations remembered (each holds a bitset of the operations and a state).
    pub cache_states_max: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            deadline: None,
            steps_max: 200_000_000,
            cache_states_max: 5_000_000,
        }
    }
}

/// Why a search stopped without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum UnknownReason {
    Timeout,
    StepBudget { steps: u64 },
    CacheFull { states: usize },
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

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Debug, Clone, Copy)]
enum Slot {
    Head,
    Call { op: usize, ret: usize },
    Return { op: usize },
}

/// The doubly linked entry list; nodes are indices, lifted nodes keep their links so that
/// they can be put back in reverse order (dancing links).
struct EntryList {
    slots: Vec<Slot>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    /// The list of the operations not `left_out`.
    fn new<O>(ops: &[TimedOp<O>], left_out: &[bool]) -> EntryList {
        // (time, 0 = call / 1 = return, op); unknown completions sort last.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            if left_out[i] {
                continue;
            }
            order.push((op.invoke_ns, 0, i));
            order.push((op.complete_ns.unwrap_or(u64::MAX), 1, i));
        }
        order.sort_unstable();
        let mut node_of_return = vec![NIL; ops.len()];
        for (pos, &(_, kind, op)) in order.iter().enumerate() {
            if kind == 1 {
                node_of_return[op] = pos + 1;
            }
        }
        let mut slots = Vec::with_capacity(order.len() + 1);
        slots.push(Slot::Head);
        for &(_, kind, op) in &order {
            slots.push(if kind == 0 {
                Slot::Call {
                    op,
                    ret: node_of_return[op],
                }
            } else {
                Slot::Return { op }
            });
        }
        let n = slots.len();
        let next = (0..n)
            .map(|i| if i + 1 < n { i + 1 } else { NIL })
            .collect();
        let prev = (0..n).map(|i| i.wrapping_sub(1)).collect();
        EntryList { slots, next, prev }
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, call: usize, ret: usize) {
        self.unlink(call);
        self.unlink(ret);
    }

    fn unlift(&mut self, call: usize, ret: usize) {
        self.relink(ret);
        self.relink(call);
    }

    /// Operations whose call entry is still listed before `node`.
    fn calls_before(&self, node: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.first();
        while at != node && at != NIL {
            if let Slot::Call { op, .. } = self.slots[at] {
                out.push(op);
            }
            at = self.next[at];
        }
        out
    }
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
    let mut list = EntryList::new(ops, &left_out);
    let mut linearized = Bitset(vec![0; ops.len().div_ceil(64)]);
    let mut cache: HashSet<(Box<[u64]>, M::State)> = HashSet::new();
    // Linearized call entries, each with the state before it.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut must_linearize = ops.iter().filter(|op| op.complete_ns.is_some()).count();
    let twin_before = earlier_unknown_twins(ops, &left_out);
    let mut stats = SearchStats::default();
    let mut deepest: Option<Counterexample<M::State>> = None;
    let mut entry = list.first();
    loop {
        if must_linearize == 0 {
            stats.states = cache.len();
            return (SearchOutcome::Linearizable, stats);
        }
        stats.steps += 1;
        if let Some(reason) = out_of_budget(&stats, cache.len(), limits) {
            stats.states = cache.len();
            return (SearchOutcome::Unknown(reason), stats);
        }
        match list.slots[entry] {
            Slot::Call { op, ret } => {
                if twin_before[op].is_some_and(|twin| !linearized.get(twin)) {
                    entry = list.next[entry];
                    continue;
                }
                let Some(next_state) = model.step(&state, &ops[op].op) else {
                    entry = list.next[entry];
                    continue;
                };
                linearized.set(op);
                if cache.insert((linearized.0.clone().into_boxed_slice(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    list.lift(entry, ret);
                    if ops[op].complete_ns.is_some() {
                        must_linearize -= 1;
                    }
                    entry = list.first();
                } else {
                    linearized.clear(op);
                    entry = list.next[entry];
                }
            }
            Slot::Return { op } => {
                if deepest
                    .as_ref()
                    .is_none_or(|d| stack.len() > d.prefix.len())
                {
                    deepest = Some(Counterexample {
                        prefix: stack.iter().map(|(e, _)| call_op(&list, *e)).collect(),
                        state: state.clone(),
                        stuck: op,
                        candidates: list.calls_before(entry),
                    });
                }
                let Some((call, before)) = stack.pop() else {
                    stats.states = cache.len();
                    let found = deepest.expect("recorded at this return entry");
                    return (SearchOutcome::NotLinearizable(found), stats);
                };
                let Slot::Call { op, ret } = list.slots[call] else {
                    unreachable!("only call entries are pushed");
                };
                list.unlift(call, ret);
                linearized.clear(op);
                if ops[op].complete_ns.is_some() {
                    must_linearize += 1;
                }
                state = before;
                entry = list.next[call];
            }
            Slot::Head => unreachable!("the head is never visited"),
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

fn call_op(list: &EntryList, node: usize) -> usize {
    match list.slots[node] {
        Slot::Call { op, .. } => op,
        _ => unreachable!("only call entries are pushed"),
    }
}

fn out_of_budget(
    stats: &SearchStats,
    states: usize,
    limits: &SearchLimits,
) -> Option<UnknownReason> {
    if stats.steps > limits.steps_max {
        return Some(UnknownReason::StepBudget {
            steps: limits.steps_max,
        });
    }
    if states > limits.cache_states_max {
        return Some(UnknownReason::CacheFull {
            states: limits.cache_states_max,
        });
    }
    if stats.steps % 4096 == 1
        && let Some(deadline) = limits.deadline
        && Instant::now() >= deadline
    {
        return Some(UnknownReason::Timeout);
    }
    None
}
