//! The doubly linked list of call and return entries that the WGL search walks, with
//! Knuth's dancing links: a lifted entry keeps its own links, so entries put back in the
//! reverse order of lifting return to their places.

use crate::TimedOp;

pub(crate) const NIL: usize = usize::MAX;
pub(crate) const HEAD: usize = 0;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Head,
    Call { op: usize, ret: usize },
    Return { op: usize },
}

/// The doubly linked entry list; nodes are indices, lifted nodes keep their links so that
/// they can be put back in reverse order (dancing links).
pub(crate) struct EntryList {
    pub(crate) slots: Vec<Slot>,
    pub(crate) next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    /// The list of the operations not `left_out`.
    pub(crate) fn new<O>(ops: &[TimedOp<O>], left_out: &[bool]) -> EntryList {
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

    pub(crate) fn first(&self) -> usize {
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

    pub(crate) fn lift(&mut self, call: usize, ret: usize) {
        self.unlink(call);
        self.unlink(ret);
    }

    pub(crate) fn unlift(&mut self, call: usize, ret: usize) {
        self.relink(ret);
        self.relink(call);
    }

    /// Operations whose call entry is still listed before `node`.
    pub(crate) fn calls_before(&self, node: usize) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoke_ns: u64, complete_ns: Option<u64>) -> TimedOp<()> {
        TimedOp {
            op: (),
            invoke_ns,
            complete_ns,
        }
    }

    fn walk(list: &EntryList) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = list.first();
        while at != NIL {
            out.push(match list.slots[at] {
                Slot::Call { op, .. } => format!("c{op}"),
                Slot::Return { op } => format!("r{op}"),
                Slot::Head => "head".into(),
            });
            at = list.next[at];
        }
        out
    }

    #[test]
    fn entries_sort_by_time_calls_first_unknown_returns_last() {
        let ops = [
            op(5, Some(10)),
            op(10, Some(12)),
            op(0, None),
            op(1, Some(3)),
        ];
        let list = EntryList::new(&ops, &[false; 4]);
        assert_eq!(
            walk(&list),
            ["c2", "c3", "r3", "c0", "c1", "r0", "r1", "r2"]
        );
        let list = EntryList::new(&ops, &[false, false, true, false]);
        assert_eq!(walk(&list), ["c3", "r3", "c0", "c1", "r0", "r1"]);
    }

    #[test]
    fn lifting_and_unlifting_in_reverse_restores_the_list() {
        let ops = [op(0, Some(4)), op(1, Some(2)), op(3, Some(5))];
        let mut list = EntryList::new(&ops, &[false; 3]);
        let before = walk(&list);
        let calls: Vec<(usize, usize)> = (1..list.slots.len())
            .filter_map(|node| match list.slots[node] {
                Slot::Call { ret, .. } => Some((node, ret)),
                _ => None,
            })
            .collect();
        list.lift(calls[1].0, calls[1].1);
        list.lift(calls[0].0, calls[0].1);
        assert_eq!(walk(&list), ["c2", "r2"]);
        assert_eq!(list.calls_before(list.next[list.first()]), [2]);
        list.unlift(calls[0].0, calls[0].1);
        list.unlift(calls[1].0, calls[1].1);
        assert_eq!(walk(&list), before);
    }
}
