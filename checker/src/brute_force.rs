//! A brute-force linearizability checker for small histories, to cross-check [`check_wgl`]:
//! for every subset of the operations with unknown outcome (those that happened), it tries
//! every order of the chosen operations that respects real time, running the model.
//! Exponential: meant for histories of up to ~10 operations.
//!
//! [`check_wgl`]: crate::check_wgl

use crate::{Model, TimedOp};

/// Histories longer than this are refused (the search would not finish).
pub const BRUTE_FORCE_OPS_MAX: usize = 12;

/// Whether `ops` is linearizable with respect to `model`, by exhaustive search.
///
/// # Panics
/// When `ops` has more than [`BRUTE_FORCE_OPS_MAX`] operations.
pub fn check_brute_force<M: Model>(model: &M, ops: &[TimedOp<M::Op>]) -> bool {
    assert!(
        ops.len() <= BRUTE_FORCE_OPS_MAX,
        "brute force takes at most {BRUTE_FORCE_OPS_MAX} operations, got {}",
        ops.len()
    );
    let unknown: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].complete_ns.is_none())
        .collect();
    (0u32..1 << unknown.len()).any(|mask| {
        let mut included: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].complete_ns.is_some())
            .collect();
        included.extend(
            unknown
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, &i)| i),
        );
        let mut used = vec![false; ops.len()];
        some_order(
            model,
            ops,
            &included,
            &mut used,
            model.init(),
            included.len(),
        )
    })
}

/// Whether the unused operations of `included` can follow, in some real-time-respecting
/// order, from `state`.
fn some_order<M: Model>(
    model: &M,
    ops: &[TimedOp<M::Op>],
    included: &[usize],
    used: &mut [bool],
    state: M::State,
    left: usize,
) -> bool {
    if left == 0 {
        return true;
    }
    for &candidate in included {
        if used[candidate] {
            continue;
        }
        // Every unused operation that completed before `candidate` was invoked must come
        // first.
        let blocked = included.iter().any(|&other| {
            !used[other]
                && other != candidate
                && ops[other]
                    .complete_ns
                    .is_some_and(|done| done < ops[candidate].invoke_ns)
        });
        if blocked {
            continue;
        }
        let Some(next) = model.step(&state, &ops[candidate].op) else {
            continue;
        };
        used[candidate] = true;
        let found = some_order(model, ops, included, used, next, left - 1);
        used[candidate] = false;
        if found {
            return true;
        }
    }
    false
}
