//! Hand-written histories: one call per operation.

#![allow(dead_code)]

use larder_checker::{Epoch, Event, EventKind, History, NodeId, OpName, RequestId, Value, Version};

/// Builds a history operation by operation.
#[derive(Default)]
pub struct Hist {
    pub events: Vec<Event>,
}

/// How an operation ends, with its result.
pub enum End {
    Ok(Option<Value>),
    Fail,
    Info,
    /// Never completes.
    Open,
}

pub fn int(v: i64) -> Option<Value> {
    Some(Value::Int(v))
}

impl Hist {
    /// Adds one operation of `process` on object `o1` key `key`, invoked at `t0` and (unless
    /// it stays open) completed at `t1`.
    #[allow(clippy::too_many_arguments)]
    pub fn op(
        &mut self,
        process: u64,
        op: OpName,
        key: &str,
        input: Option<Value>,
        t0: u64,
        end: End,
        t1: u64,
    ) -> &mut Event {
        self.op_on(process, "o1", op, key, input, t0, end, t1)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn op_on(
        &mut self,
        process: u64,
        object: &str,
        op: OpName,
        key: &str,
        input: Option<Value>,
        t0: u64,
        end: End,
        t1: u64,
    ) -> &mut Event {
        let mut invoke = Event::new(process, EventKind::Invoke, op, object, key, t0);
        invoke.value = input;
        self.events.push(invoke);
        let (kind, value) = match end {
            End::Ok(value) => (EventKind::Ok, value),
            End::Fail => (EventKind::Fail, None),
            End::Info => (EventKind::Info, None),
            End::Open => {
                let at = self.events.len() - 1;
                return &mut self.events[at];
            }
        };
        let mut done = Event::new(process, kind, op, object, key, t1);
        done.value = value;
        self.events.push(done);
        let at = self.events.len() - 1;
        &mut self.events[at]
    }

    pub fn write(&mut self, p: u64, v: i64, t0: u64, end: End, t1: u64) -> &mut Event {
        self.op(p, OpName::Write, "x", int(v), t0, end, t1)
    }

    pub fn read(&mut self, p: u64, seen: Option<i64>, t0: u64, t1: u64) -> &mut Event {
        self.op(
            p,
            OpName::Read,
            "x",
            None,
            t0,
            End::Ok(seen.map(Value::Int)),
            t1,
        )
    }

    pub fn add(&mut self, p: u64, delta: i64, t0: u64, end: End, t1: u64) -> &mut Event {
        self.op(p, OpName::Add, "x", int(delta), t0, end, t1)
    }

    pub fn history(&self) -> History {
        History::from_events(self.events.clone()).expect("well-formed test history")
    }
}

/// Sets the fields an owner's acknowledgement carries.
pub fn acked(event: &mut Event, epoch: u64, node: u64, version: u64) {
    event.epoch = Some(Epoch(epoch));
    event.node = Some(NodeId(node));
    event.version = Some(Version::single(version));
}

/// Gives the last two events (an operation's invocation and completion) a request id.
pub fn with_request(hist: &mut Hist, id: &str) {
    let n = hist.events.len();
    for event in &mut hist.events[n.saturating_sub(2)..] {
        event.request_id = Some(RequestId::from(id));
    }
}
