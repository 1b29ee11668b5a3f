//! Synthetic histories for tests and benchmarks: clients of one simulated register or
//! counter, each operation taking effect at a random point between its invocation and
//! completion (so the history is linearizable), with failed, unknown and late-applying
//! ("zombie") operations and fail-overs that raise the epoch. In `chaos` mode results are
//! random instead, which gives mostly non-linearizable histories.
//!
//! Every random decision comes from a `choose(n) -> 0..n` function: a seeded [`SplitMix64`]
//! for benchmarks, or a proptest-generated list of choices, which shrinks well.

use crate::{Epoch, Event, EventKind, NodeId, OpName, RequestId, Value, Version};

/// The simulated object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimObject {
    Register,
    Counter,
}

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub object: SimObject,
    pub processes: u64,
    /// Operations invoked (the final read not counted).
    pub ops: usize,
    /// Every write writes a new value (else values are drawn from 0..4).
    pub unique_values: bool,
    /// After everything settled, one more process reads the final value.
    pub final_read: bool,
    /// Results are random rather than the object's.
    pub chaos: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            object: SimObject::Register,
            processes: 3,
            ops: 8,
            unique_values: true,
            final_read: false,
            chaos: false,
        }
    }
}

/// The object key all simulated operations use.
pub const SIM_OBJECT: &str = "o1";
pub const SIM_KEY: &str = "x";

/// A small deterministic random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }
}

/// A history from a seeded generator.
pub fn simulate_seeded(config: &SimConfig, seed: u64) -> Vec<Event> {
    let mut rng = SplitMix64(seed);
    simulate(config, &mut |n| rng.below(n))
}

#[derive(Debug, Clone)]
struct Pending {
    process: u64,
    op: OpName,
    input: Option<Value>,
    request: Option<RequestId>,
    /// Set once the operation took effect: its completion.
    applied: Option<Event>,
}

struct Sim<'a> {
    config: SimConfig,
    choose: &'a mut dyn FnMut(u32) -> u32,
    events: Vec<Event>,
    time_ns: u64,
    register: Option<i64>,
    counter: i64,
    version: u64,
    epoch: u64,
    next_value: i64,
    /// Completed `info` without having taken effect; may still take effect later.
    zombies: Vec<Pending>,
}

/// Generates a history; `choose(n)` must return a number in `0..n`.
pub fn simulate(config: &SimConfig, choose: &mut dyn FnMut(u32) -> u32) -> Vec<Event> {
    let processes = config.processes.max(1);
    let mut sim = Sim {
        config: *config,
        choose,
        events: Vec::new(),
        time_ns: 0,
        register: None,
        counter: 0,
        version: 0,
        epoch: 1,
        next_value: 1,
        zombies: Vec::new(),
    };
    let mut slots: Vec<Option<Pending>> = vec![None; processes as usize];
    let mut invoked = 0;
    let mut steps_left = 50 * config.ops + 100;
    while steps_left > 0 && (invoked < config.ops || slots.iter().any(Option::is_some)) {
        steps_left -= 1;
        let roll = sim.pick(100);
        if roll < 3 {
            sim.epoch += 1;
            continue;
        }
        if roll < 8 && !sim.zombies.is_empty() {
            let at = sim.pick(sim.zombies.len() as u32) as usize;
            let mut zombie = sim.zombies.swap_remove(at);
            sim.apply(&mut zombie);
            continue;
        }
        let p = sim.pick(processes as u32) as usize;
        slots[p] = match slots[p].take() {
            None if invoked < config.ops => {
                invoked += 1;
                Some(sim.invoke(p as u64, invoked))
            }
            None => None,
            Some(pending) => sim.advance(pending),
        };
    }
    for pending in slots.into_iter().flatten() {
        // Left without completion: unknown, applied or not.
        if pending.applied.is_none() && sim.pick(2) == 0 {
            sim.zombies.push(pending);
        }
    }
    for mut zombie in std::mem::take(&mut sim.zombies) {
        if sim.pick(2) == 0 {
            sim.apply(&mut zombie);
        }
    }
    if config.final_read {
        sim.final_read(processes);
    }
    sim.events
}

impl Sim<'_> {
    fn pick(&mut self, n: u32) -> u32 {
        (self.choose)(n.max(1)).min(n.saturating_sub(1))
    }

    fn tick(&mut self) -> u64 {
        self.time_ns += u64::from(self.pick(3));
        self.time_ns
    }

    fn event(&mut self, process: u64, kind: EventKind, op: OpName) -> Event {
        let time_ns = self.tick();
        Event::new(process, kind, op, SIM_OBJECT, SIM_KEY, time_ns)
    }

    fn invoke(&mut self, process: u64, n: usize) -> Pending {
        let roll = self.pick(10);
        let (op, input) = match self.config.object {
            SimObject::Register if roll < 4 => (OpName::Read, None),
            SimObject::Register if roll < 8 => (OpName::Write, Some(Value::Int(self.value()))),
            SimObject::Register => {
                let expected = match self.pick(3) {
                    0 => self.register,
                    1 => None,
                    _ => Some(i64::from(self.pick(4))),
                };
                (OpName::Cas, Some(Value::Pair(expected, Some(self.value()))))
            }
            SimObject::Counter if roll < 4 => (OpName::Read, None),
            SimObject::Counter => (OpName::Add, Some(Value::Int(1 + i64::from(self.pick(3))))),
        };
        let request = op
            .is_mutation()
            .then(|| RequestId(format!("p{process}-{n}")));
        let mut event = self.event(process, EventKind::Invoke, op);
        event.value = input.clone();
        event.request_id = request.clone();
        self.events.push(event);
        Pending {
            process,
            op,
            input,
            request,
            applied: None,
        }
    }

    fn value(&mut self) -> i64 {
        if self.config.unique_values {
            self.next_value += 1;
            self.next_value
        } else {
            i64::from(self.pick(4))
        }
    }

    /// Moves an outstanding operation on: take effect, complete, fail or become unknown.
    fn advance(&mut self, mut pending: Pending) -> Option<Pending> {
        let roll = self.pick(20);
        if pending.applied.is_none() {
            match roll {
                0..=14 => {
                    self.apply(&mut pending);
                    return Some(pending);
                }
                15 | 16 => self.complete(pending, EventKind::Fail),
                17 => {
                    self.complete(pending.clone(), EventKind::Info);
                    if self.pick(2) == 0 {
                        self.zombies.push(pending);
                    }
                }
                18 => {
                    self.apply(&mut pending);
                    self.complete(pending, EventKind::Info);
                }
                _ => return Some(pending),
            }
            return None;
        }
        let kind = if roll < 18 {
            EventKind::Ok
        } else {
            EventKind::Info
        };
        self.complete(pending, kind);
        None
    }

    fn complete(&mut self, pending: Pending, kind: EventKind) {
        let mut event = match (&pending.applied, kind) {
            (Some(done), EventKind::Ok | EventKind::Fail) => done.clone(),
            _ => self.event(pending.process, kind, pending.op),
        };
        event.time_ns = self.tick();
        if kind == EventKind::Info {
            event.kind = EventKind::Info;
            event.value = None;
        }
        if event.kind == EventKind::Fail && pending.applied.is_none() && self.config.chaos {
            event.kind = EventKind::Ok;
        }
        event.request_id = pending.request;
        self.events.push(event);
    }

    /// The operation takes effect now; its completion event is prepared.
    fn apply(&mut self, pending: &mut Pending) {
        let mut kind = EventKind::Ok;
        let mut output = None;
        match (pending.op, &pending.input) {
            (OpName::Read, _) if self.config.object == SimObject::Register => {
                output = self.register.map(Value::Int);
            }
            (OpName::Read, _) => output = Some(Value::Int(self.counter)),
            (OpName::Write, Some(Value::Int(v))) => self.write(Some(*v)),
            (OpName::Cas, Some(Value::Pair(expected, new))) => {
                if *expected == self.register {
                    self.write(*new);
                } else {
                    kind = EventKind::Fail;
                }
            }
            (OpName::Add, Some(Value::Int(delta))) => {
                self.counter += delta;
                self.version += 1;
                output = Some(Value::Int(self.counter));
            }
            _ => {}
        }
        if self.config.chaos && output.is_some() {
            output = Some(Value::Int(i64::from(self.pick(5))));
        }
        let mut done = Event::new(pending.process, kind, pending.op, SIM_OBJECT, SIM_KEY, 0);
        done.value = output;
        done.version = Some(Version::single(self.version));
        done.epoch = Some(Epoch(self.epoch));
        done.node = Some(NodeId(self.epoch % 3));
        pending.applied = Some(done);
    }

    fn write(&mut self, value: Option<i64>) {
        self.register = value;
        self.version += 1;
    }

    fn final_read(&mut self, process: u64) {
        self.time_ns += 1;
        let invoke = self.event(process, EventKind::Invoke, OpName::Read);
        self.events.push(invoke);
        let mut read = Pending {
            process,
            op: OpName::Read,
            input: None,
            request: None,
            applied: None,
        };
        self.apply(&mut read);
        self.complete(read, EventKind::Ok);
    }
}
