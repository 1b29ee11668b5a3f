//! The object workload of the nemesis runs (`nemesis.rs` on real processes, `sim.rs` in
//! the simulation): client processes run register and counter operations on two objects
//! through chosen nodes and record every call as a history for `larder-checker`.
//!
//! Time is tokio's, so in the simulation it is simulated time; the recorder also keeps
//! the timestamps strictly increasing in the order events were recorded, which is their
//! real order (the simulation runs on one thread; the process runs record under a lock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_checker::{Event, EventKind, History, NodeId, OpName, Value};
use larder_proto::v1::objects_client::ObjectsClient;
use tokio::time::Instant;
use tonic::transport::Channel;

mod calls;

// Each test binary compiles the harness and uses its own part of it.
#[allow(unused_imports)]
pub use calls::{Outcome, add, cas, object_ref, read, write};

pub const NAMESPACE: &str = "nemesis";
pub const REGISTER: (&str, &str) = ("reg", "r");
pub const COUNTER: (&str, &str) = ("ctr", "n");
/// One attempt of a call; a slower one is recorded as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write whose outcome stays unknown is sent again (long enough to ride out
/// a kill and a failover), at most how often, and the pause between two attempts.
const RETRY_FOR: Duration = Duration::from_secs(10);
const ATTEMPTS_MAX: u32 = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The history, on one monotonic clock.
#[derive(Clone)]
pub struct Recorder {
    /// Time since the start of the run.
    clock: Arc<dyn Fn() -> Duration + Send + Sync>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// A recorder on tokio's clock, from now.
    pub fn new() -> Recorder {
        let started = Instant::now();
        Recorder::with_clock(move || started.elapsed())
    }

    /// A recorder on the given clock (the simulation's global one).
    pub fn with_clock(clock: impl Fn() -> Duration + Send + Sync + 'static) -> Recorder {
        Recorder {
            clock: Arc::new(clock),
            events: Arc::default(),
        }
    }

    /// Stamps `event` with the time, later than every event recorded before it (a
    /// simulated clock stands still within a tick, while events still happen in order).
    pub fn push(&self, mut event: Event) {
        let mut events = self.events.lock().expect("history lock");
        let after = events.last().map_or(0, |e| e.time_ns + 1);
        event.time_ns = (((self.clock)()).as_nanos() as u64).max(after);
        events.push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("history lock").clone()
    }

    /// Records that the register held 0 before the run, as if written by a process
    /// before it (every run places the register with 0 first).
    pub fn register_starts_at_zero(&self) {
        let mut setup = Event::new(
            99,
            EventKind::Invoke,
            OpName::Write,
            REGISTER.0,
            REGISTER.1,
            0,
        );
        setup.value = Some(Value::Int(0));
        self.push(setup);
        self.push(Event::new(
            99,
            EventKind::Ok,
            OpName::Write,
            REGISTER.0,
            REGISTER.1,
            0,
        ));
    }
}

#[derive(Clone)]
pub struct Call {
    pub op: OpName,
    pub target: (&'static str, &'static str),
    pub argument: Option<Value>,
    pub request_id: Option<String>,
}

pub async fn run_call(
    recorder: &Recorder,
    client: &mut ObjectsClient<Channel>,
    process: u64,
    node: u64,
    call: Call,
) -> Outcome {
    let mut invoke = Event::new(
        process,
        EventKind::Invoke,
        call.op,
        call.target.0,
        call.target.1,
        0,
    );
    invoke.value = call.argument.clone();
    invoke.node = Some(NodeId(node));
    invoke.request_id = call.request_id.as_deref().map(Into::into);
    recorder.push(invoke);
    let id = call.request_id.clone().unwrap_or_default();
    let outcome = match (call.op, &call.argument) {
        (OpName::Read, _) => read(client, call.target).await,
        (OpName::Write, Some(Value::Int(v))) => write(client, *v, &id).await,
        (OpName::Cas, Some(Value::Pair(Some(expected), Some(new)))) => {
            cas(client, *expected, *new, &id).await
        }
        (OpName::Add, _) => add(client, &id).await,
        other => panic!("unexpected call {other:?}"),
    };
    let mut done = Event::new(
        process,
        outcome.kind,
        call.op,
        call.target.0,
        call.target.1,
        0,
    );
    done.value = outcome.value.clone();
    done.version = outcome.version.map(larder_checker::Version::single);
    if let Some((owner, epoch)) = outcome.owner_epoch {
        done.node = Some(NodeId(owner));
        done.epoch = Some(larder_checker::Epoch(epoch));
    }
    done.request_id = call.request_id.as_deref().map(Into::into);
    done.error = outcome.error.clone();
    recorder.push(done);
    outcome
}

/// Where a client process sends its calls.
#[derive(Clone)]
pub struct Route {
    /// The node and its api address now, asked before every call (a membership change
    /// may retire the node and send its clients elsewhere).
    pub node: Arc<dyn Fn() -> (u64, String) + Send + Sync>,
    /// A channel to an api address.
    pub connect: Arc<dyn Fn(&str) -> Channel + Send + Sync>,
}

/// A client of one route: reconnects when the route names another address.
struct RoutedClient {
    route: Route,
    node: u64,
    addr: String,
    client: ObjectsClient<Channel>,
}

impl RoutedClient {
    fn new(route: Route) -> RoutedClient {
        let (node, addr) = (route.node)();
        let client = ObjectsClient::new((route.connect)(&addr));
        RoutedClient {
            route,
            node,
            addr,
            client,
        }
    }

    fn follow(&mut self) -> (u64, &mut ObjectsClient<Channel>) {
        let (node, addr) = (self.route.node)();
        if addr != self.addr {
            self.client = ObjectsClient::new((self.route.connect)(&addr));
            (self.node, self.addr) = (node, addr);
        }
        (self.node, &mut self.client)
    }
}

/// One client process: random register and counter operations through the node its
/// route names.
pub async fn client_loop(
    recorder: Recorder,
    route: Route,
    process: u64,
    until: Instant,
    seed: u64,
) {
    let mut routed = RoutedClient::new(route);
    let mut rng = super::rng::Rng::new(seed ^ process.wrapping_mul(0x1000_0000_01B3));
    let mut next = move || rng.next_u64();
    let mut last_seen = None;
    let mut seq = 0i64;
    while Instant::now() < until {
        seq += 1;
        let unique = process as i64 * 1_000_000 + seq;
        let id = Some(format!("p{process}-{seq}"));
        let call = match next() % 6 {
            0 | 1 => Call {
                op: OpName::Read,
                target: REGISTER,
                argument: None,
                request_id: None,
            },
            2 => Call {
                op: OpName::Write,
                target: REGISTER,
                argument: Some(Value::Int(unique)),
                request_id: id,
            },
            3 => Call {
                op: OpName::Cas,
                target: REGISTER,
                argument: Some(Value::Pair(Some(last_seen.unwrap_or(0)), Some(unique))),
                request_id: id,
            },
            4 => Call {
                op: OpName::Add,
                target: COUNTER,
                argument: Some(Value::Int(1)),
                request_id: id,
            },
            _ => Call {
                op: OpName::Read,
                target: COUNTER,
                argument: None,
                request_id: None,
            },
        };
        let reads_register = call.op == OpName::Read && call.target == REGISTER;
        let (node, client) = routed.follow();
        let mut outcome = run_call(&recorder, client, process, node, call.clone()).await;
        // A write whose outcome is unknown goes again with the same request id (applied
        // at most once), as a real client would; the checker merges the attempts. An
        // operation left unknown stays open for ever, and the counter's linearizability
        // search grows exponentially with the count of those.
        let (mut attempts, first_sent) = (1, Instant::now());
        while outcome.kind == EventKind::Info
            && attempts < ATTEMPTS_MAX
            && first_sent.elapsed() < RETRY_FOR
        {
            tokio::time::sleep(RETRY_PAUSE).await;
            attempts += 1;
            let (node, client) = routed.follow();
            outcome = run_call(&recorder, client, process, node, call.clone()).await;
        }
        if reads_register && let Some(Value::Int(v)) = outcome.value {
            last_seen = Some(v);
        }
        if outcome.kind != EventKind::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts `processes` client processes, each on `route(process)`, until `until`.
pub fn spawn_clients(
    recorder: &Recorder,
    processes: u64,
    until: Instant,
    seed: u64,
    route: impl Fn(u64) -> Route,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..processes)
        .map(|process| {
            tokio::spawn(client_loop(
                recorder.clone(),
                route(process),
                process,
                until,
                seed,
            ))
        })
        .collect()
}

/// After every write completed: reads both objects through `node` until each answers,
/// or fails after `patience`.
pub async fn final_reads(
    recorder: &Recorder,
    channel: Channel,
    node: u64,
    patience: Duration,
) -> Result<(), String> {
    let mut client = ObjectsClient::new(channel);
    for target in [REGISTER, COUNTER] {
        let deadline = Instant::now() + patience;
        loop {
            let call = Call {
                op: OpName::Read,
                target,
                argument: None,
                request_id: None,
            };
            let outcome = run_call(recorder, &mut client, FINAL_PROCESS, node, call).await;
            if outcome.kind == EventKind::Ok {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "final read of {target:?} through node {node} never answered: {:?}",
                    outcome.error
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The process id of the final reads.
pub const FINAL_PROCESS: u64 = 100;

/// What the run did, for docs/reliability.md: operations per kind and outcome, and the
/// highest epoch any owner acknowledged a write in.
pub fn figures(history: &History, events: &[Event]) -> String {
    let mut per_op: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    for op in &history.operations {
        let slot = match op.outcome {
            larder_checker::Outcome::Ok => 0,
            larder_checker::Outcome::Fail => 1,
            larder_checker::Outcome::Unknown => 2,
        };
        per_op.entry(format!("{:?}", op.op)).or_default()[slot] += 1;
    }
    let max_epoch = events.iter().filter_map(|e| e.epoch).map(|e| e.0).max();
    format!(
        "operations: {} ([ok, failed, unknown] per kind: {per_op:?}); highest acknowledging epoch: {max_epoch:?}",
        history.operations.len()
    )
}

/// The checkers must be able to fail this very history: with a final read changed to a
/// value nobody wrote, or to a counter below the acknowledged adds, lost-writes fails.
pub fn assert_checkers_are_not_blind(events: &[Event], history: &History) {
    let acked_adds = history
        .operations
        .iter()
        .filter(|op| op.op == OpName::Add && op.outcome == larder_checker::Outcome::Ok)
        .count() as i64;
    let acked_writes = history
        .operations
        .iter()
        .filter(|op| op.op == OpName::Write && op.outcome == larder_checker::Outcome::Ok)
        .count();
    assert!(
        acked_adds > 0 && acked_writes > 1,
        "the run acknowledged writes ({acked_writes}) and adds ({acked_adds})"
    );
    for (target, forged) in [(REGISTER, -1), (COUNTER, acked_adds - 1)] {
        let mut changed = events.to_vec();
        let final_read = changed
            .iter_mut()
            .rev()
            .find(|e| {
                e.process.0 == FINAL_PROCESS && e.kind == EventKind::Ok && e.object.0 == target.0
            })
            .expect("a final read");
        final_read.value = Some(Value::Int(forged));
        let forged_history = History::from_events(changed).expect("well-formed history");
        let report = larder_checker::check_lost_writes(&forged_history);
        assert_eq!(
            report.verdict,
            larder_checker::Verdict::Fail,
            "lost-writes is blind to a final read of {target:?} forged to {forged}"
        );
    }
}
