//! A batch of calls at the owner: taken from the mailbox up to its limits, executed one
//! after another on the object's in-memory state (each call sees the writes before it),
//! and answered together once their writes — one replication round — reach a majority.
//! Executing is pure; the actor does the round.

use larder_directory::ObjectPlacement;
use tokio::sync::{mpsc, oneshot};

use crate::op::{Answer, Event, Op, Reply};
use crate::{Mutation, ObjectError, ObjectLimits, ObjectState};

/// Calls run under one replication round, at most.
pub(super) const BATCH_CALLS_MAX: usize = 64;
/// Bytes of keys and values (estimated from the calls) under one replication round;
/// a single larger call still goes alone.
pub(super) const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

pub(crate) struct Call {
    pub op: Op,
    pub request_id: Option<String>,
    pub reply: oneshot::Sender<Result<Answer, ObjectError>>,
}

type ReplyTo = oneshot::Sender<Result<Answer, ObjectError>>;

/// `first` and the calls queued behind it, up to the batch limits.
pub(super) fn take_batch(first: Call, mailbox: &mut mpsc::Receiver<Call>) -> Vec<Call> {
    let mut bytes = first.op.payload_bytes();
    let mut calls = vec![first];
    while calls.len() < BATCH_CALLS_MAX && bytes < BATCH_BYTES_MAX {
        let Ok(call) = mailbox.try_recv() else {
            break;
        };
        bytes += call.op.payload_bytes();
        calls.push(call);
    }
    calls
}

/// A batch executed in memory, waiting for its round.
pub(super) struct Executed {
    /// One entry per call that wrote, in order: the round's writes.
    pub writes: Vec<Vec<Mutation>>,
    answers: Vec<(ReplyTo, Result<Reply, ObjectError>)>,
    /// Some answer read the state (or repeats a remembered write): it may be given only
    /// while this node's lease holds, or after a round confirms it still owns the object.
    pub needs_lease: bool,
    /// Some write was refused because the owner serves reads only.
    pub refused_writes: bool,
    /// The object version of the batch's first write.
    first_version: u64,
}

/// Runs `calls` on `state` in order, applying each write to it. `refuse_writes`: the
/// owner serves reads only, and every write gets this error instead.
pub(super) fn execute(
    state: &mut ObjectState,
    calls: Vec<Call>,
    limits: &ObjectLimits,
    refuse_writes: Option<&ObjectError>,
) -> Executed {
    let mut executed = Executed {
        first_version: state.version() + 1,
        writes: Vec::new(),
        answers: Vec::with_capacity(calls.len()),
        needs_lease: false,
        refused_writes: false,
    };
    for call in calls {
        let answer = match state.execute_request(&call.op, call.request_id.as_deref(), limits) {
            Ok((_, mutations)) if !mutations.is_empty() && refuse_writes.is_some() => {
                executed.refused_writes = true;
                Err(refuse_writes.cloned().expect("checked just above"))
            }
            Ok((reply, mutations)) if !mutations.is_empty() => {
                state.apply(&mutations);
                executed.writes.push(mutations);
                Ok(reply)
            }
            // A firing with nothing due reads nothing that needs the lease.
            Ok((reply, _)) if matches!(call.op, Op::FireAlarms { .. }) => Ok(reply),
            // Reads, and retried writes answered from memory, need the lease.
            Ok((reply, _)) => {
                executed.needs_lease = true;
                Ok(reply)
            }
            Err(err) => Err(err),
        };
        executed.answers.push((call.reply, answer));
    }
    executed
}

impl Executed {
    /// The version the batch's replication round starts at, or `None` when it needs no
    /// round: writes need one; reads need one (a ping at the current version, which
    /// confirms with a majority that this node still owns the object) only once the
    /// lease has run out.
    pub fn round_version(&self, lease_expired: bool) -> Option<u64> {
        if !self.writes.is_empty() {
            Some(self.first_version)
        } else if self.needs_lease && lease_expired {
            Some(self.first_version - 1)
        } else {
            None
        }
    }

    /// The events the batch's writes append (alarms fired, messages published).
    pub fn events(&self) -> Vec<Event> {
        self.writes
            .iter()
            .flatten()
            .filter_map(|m| match m {
                Mutation::AppendEvent(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Answers every call (the round, if any, reached a majority).
    pub fn answer(self, placement: &ObjectPlacement) {
        for (reply, answer) in self.answers {
            let answer = answer.map(|reply| Answer {
                reply,
                owner: placement.owner.0,
                epoch: placement.epoch.0,
            });
            let _ = reply.send(answer);
        }
    }

    /// Answers every call with `err`: the round failed, so the outcome of the batch's
    /// writes is unknown (and reads must not be trusted either).
    pub fn fail(self, err: &ObjectError) {
        for (reply, _) in self.answers {
            let _ = reply.send(Err(err.clone()));
        }
    }
}

/// Answers every call with `err` (the batch did not run).
pub(super) fn refuse_all(calls: Vec<Call>, err: &ObjectError) {
    for call in calls {
        let _ = call.reply.send(Err(err.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        op: Op,
        request_id: Option<&str>,
    ) -> (Call, oneshot::Receiver<Result<Answer, ObjectError>>) {
        let (reply, rx) = oneshot::channel();
        let call = Call {
            op,
            request_id: request_id.map(str::to_string),
            reply,
        };
        (call, rx)
    }

    fn put(bytes: usize) -> (Call, oneshot::Receiver<Result<Answer, ObjectError>>) {
        let op = Op::Put {
            entries: vec![(b"k".to_vec(), vec![0; bytes.saturating_sub(1)])],
        };
        call(op, None)
    }

    fn add(delta: i64) -> Op {
        Op::Add {
            key: b"n".to_vec(),
            delta,
        }
    }

    fn placement() -> ObjectPlacement {
        crate::testing::placement(1, &[1])
    }

    #[test]
    fn a_batch_stops_at_its_call_and_byte_limits_and_leaves_the_rest_queued() {
        let (tx, mut mailbox) = mpsc::channel(BATCH_CALLS_MAX * 2);
        let mut replies = Vec::new();
        for _ in 0..BATCH_CALLS_MAX + 5 {
            let (call, rx) = put(10);
            replies.push(rx);
            assert!(tx.try_send(call).is_ok());
        }
        let first = mailbox.try_recv().expect("queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), BATCH_CALLS_MAX);
        let first = mailbox.try_recv().expect("the rest stays queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), 5);

        // Large calls: the batch closes once it reaches the byte limit.
        let big = BATCH_BYTES_MAX / 2;
        for _ in 0..5 {
            let (call, rx) = put(big);
            replies.push(rx);
            assert!(tx.try_send(call).is_ok());
        }
        let first = mailbox.try_recv().expect("queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), 2);
        // A single call over the limit still goes, alone.
        let (call, _rx) = put(BATCH_BYTES_MAX + 1);
        assert_eq!(take_batch(call, &mut mailbox).len(), 1);
    }

    #[tokio::test]
    async fn calls_see_the_writes_before_them_and_are_answered_after_the_round() {
        let mut state = ObjectState::default();
        let (first, first_rx) = call(add(2), Some("a"));
        let (read, read_rx) = call(
            Op::Get {
                keys: vec![b"n".to_vec()],
            },
            None,
        );
        let (retry, retry_rx) = call(add(2), Some("a"));
        let (bad, bad_rx) = call(
            Op::Put {
                entries: vec![(Vec::new(), Vec::new())],
            },
            None,
        );
        let executed = execute(
            &mut state,
            vec![first, read, retry, bad],
            &ObjectLimits::default(),
            None,
        );
        assert_eq!(executed.writes.len(), 1, "the retry writes nothing");
        assert!(
            executed.needs_lease,
            "the read and the retry need the lease"
        );
        assert!(!executed.refused_writes);
        assert_eq!(state.version(), 1);
        assert_eq!(
            executed.round_version(false),
            Some(1),
            "writes always replicate"
        );
        executed.answer(&placement());
        let first = first_rx.await.expect("answered").expect("added");
        assert_eq!((first.owner, first.epoch), (1, 3));
        assert!(matches!(
            first.reply,
            Reply::Added {
                value: 2,
                version: 1
            }
        ));
        let read = read_rx.await.expect("answered").expect("read");
        assert!(
            matches!(read.reply, Reply::Values(ref v) if v[0].value.as_deref() == Some(&b"2"[..]))
        );
        let retry = retry_rx.await.expect("answered").expect("retry");
        assert!(matches!(
            retry.reply,
            Reply::Added {
                value: 2,
                version: 1
            }
        ));
        assert!(matches!(
            bad_rx.await.expect("answered"),
            Err(ObjectError::InvalidArgument(_))
        ));
    }

    #[test]
    fn reads_ping_a_majority_only_once_the_lease_ran_out() {
        let mut state = ObjectState::default();
        let limits = ObjectLimits::default();
        let (write, _w) = call(add(1), None);
        execute(&mut state, vec![write], &limits, None);
        let (read, _r) = call(Op::Stats, None);
        let reads = execute(&mut state, vec![read], &limits, None);
        assert_eq!(reads.round_version(false), None);
        assert_eq!(
            reads.round_version(true),
            Some(1),
            "a ping at the current version"
        );
        let (fire, _f) = call(Op::FireAlarms { now_ms: 0 }, None);
        let nothing_due = execute(&mut state, vec![fire], &limits, None);
        assert_eq!(
            nothing_due.round_version(true),
            None,
            "nothing read, nothing due"
        );
    }

    #[tokio::test]
    async fn an_owner_serving_reads_only_refuses_writes_and_answers_reads() {
        let mut state = ObjectState::default();
        let (write, write_rx) = call(add(1), None);
        let (read, read_rx) = call(Op::Stats, None);
        let full = ObjectError::DiskFull("disk nearly full".into());
        let executed = execute(
            &mut state,
            vec![write, read],
            &ObjectLimits::default(),
            Some(&full),
        );
        assert!(executed.writes.is_empty());
        assert!(executed.refused_writes);
        assert_eq!(state.version(), 0, "a refused write leaves the state alone");
        executed.answer(&placement());
        assert_eq!(write_rx.await.expect("answered"), Err(full));
        assert!(matches!(
            read_rx.await.expect("answered").expect("read").reply,
            Reply::Stats(_)
        ));
    }
}
