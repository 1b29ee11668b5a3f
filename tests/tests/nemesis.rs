//! A nemesis run (issue #5): clients through every node run register and counter
//! operations on two objects while the nemesis injects, one at a time, in shuffled
//! rounds (`support::nemesis`): `kill -9` of an owner or of any node (restarted after
//! 0–5 s), an owner frozen past its lease, an owner cut off, halves with the owner on the
//! minority side, the directory's Raft leader cut off, one-way cuts, a majority ring,
//! 20–30 % packet loss, object moves, and membership changes (demote and promote a voter,
//! replace a drained node with a fresh one, remove a node and let it rejoin) — nft rules
//! between the nodes' own 127.0.0.x addresses. Every call is recorded as a history and judged by `larder-checker`:
//! linearizability per key, no lost acknowledged write, no request id applied twice, no
//! write acknowledged by a superseded owner.
//!
//! `NEMESIS_SECS` sets the length (default 60 s; the soak runs longer), `NEMESIS_FAULTS`
//! picks faults by name (default: all of them, see `DEFAULT_FAULTS`), `NEMESIS_SEED`
//! replays a fault schedule (the seed is printed).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_checker::{CheckInputs, Event, EventKind, History, NodeId, OpName, Value, check_all};
use larder_proto::v1 as pb;
use larder_proto::v1::objects_client::ObjectsClient;
use support::TestCluster;
use support::members::Routes;
use support::nemesis::{DEFAULT_FAULTS, FAULT_MAX, Fault, Nemesis};
use tonic::transport::Channel;

const NODES: u64 = 5;
const NAMESPACE: &str = "nemesis";
const REGISTER: (&str, &str) = ("reg", "r");
const COUNTER: (&str, &str) = ("ctr", "n");
/// One attempt of a call; a slower one is recorded as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write whose outcome stays unknown is sent again (long enough to ride out
/// a kill and a failover), at most how often, and the pause between two attempts.
const RETRY_FOR: Duration = Duration::from_secs(10);
const ATTEMPTS_MAX: u32 = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const SETTINGS: &[support::Setting] = &[
    ("directory.node_down_after_ms", "800"),
    ("objects.lease_ms", "400"),
    ("directory.election_timeout_min_ms", "300"),
    ("directory.election_timeout_max_ms", "600"),
];

/// The history, on the harness's one monotonic clock.
#[derive(Clone)]
struct Recorder {
    started: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    fn push(&self, mut event: Event) {
        event.time_ns = self.started.elapsed().as_nanos() as u64;
        self.events.lock().expect("history lock").push(event);
    }
}

fn object_ref(name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        namespace: NAMESPACE.into(),
        key: Some(pb::object_ref::Key::Name(name.into())),
        location_hint: String::new(),
    })
}

fn parse(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// What one call came to: its completion kind, result value, version, owner and epoch.
struct Outcome {
    kind: EventKind,
    value: Option<Value>,
    version: Option<u64>,
    owner_epoch: Option<(u64, u64)>,
    error: Option<String>,
}

impl Outcome {
    /// A write acknowledged by `owner` in `epoch`.
    fn acked(value: Option<Value>, version: u64, owner: u64, epoch: u64) -> Outcome {
        Outcome {
            kind: EventKind::Ok,
            value,
            version: Some(version),
            owner_epoch: Some((owner, epoch)),
            error: None,
        }
    }

    fn from_error(status: &tonic::Status, mutation: bool) -> Outcome {
        // A refused precondition or argument certainly changed nothing; any other error
        // of a write leaves its outcome unknown; a failed read changed nothing.
        let definite = matches!(
            status.code(),
            tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
        );
        Outcome {
            kind: if definite || !mutation {
                EventKind::Fail
            } else {
                EventKind::Info
            },
            value: None,
            version: None,
            owner_epoch: None,
            error: Some(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

async fn read(client: &mut ObjectsClient<Channel>, (object, key): (&str, &str)) -> Outcome {
    let request = timed(pb::ObjectGetRequest {
        object: object_ref(object),
        keys: vec![key.as_bytes().to_vec()],
    });
    match client.get(request).await {
        Ok(response) => {
            let found = response.into_inner().values.pop();
            let value = found
                .as_ref()
                .filter(|v| v.found)
                .and_then(|v| parse(&v.value));
            Outcome {
                kind: EventKind::Ok,
                value: value.map(Value::Int),
                version: found.map(|v| v.version),
                owner_epoch: None,
                error: None,
            }
        }
        Err(status) => Outcome::from_error(&status, false),
    }
}

async fn write(client: &mut ObjectsClient<Channel>, value: i64, id: &str) -> Outcome {
    let request = timed(pb::ObjectPutRequest {
        object: object_ref(REGISTER.0),
        entries: vec![pb::ObjectEntry {
            key: REGISTER.1.as_bytes().to_vec(),
            value: value.to_string().into_bytes(),
        }],
        request_id: id.into(),
    });
    match client.put(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(None, r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

async fn cas(client: &mut ObjectsClient<Channel>, expected: i64, new: i64, id: &str) -> Outcome {
    let key = REGISTER.1.as_bytes().to_vec();
    let request = timed(pb::ObjectTransactionRequest {
        object: object_ref(REGISTER.0),
        preconditions: vec![pb::Precondition {
            key: key.clone(),
            check: Some(pb::precondition::Check::ValueEquals(
                expected.to_string().into_bytes(),
            )),
        }],
        writes: vec![pb::TransactionWrite {
            key,
            write: Some(pb::transaction_write::Write::Put(
                new.to_string().into_bytes(),
            )),
        }],
        request_id: id.into(),
    });
    match client.transaction(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(None, r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

async fn add(client: &mut ObjectsClient<Channel>, id: &str) -> Outcome {
    let request = timed(pb::ObjectAddRequest {
        object: object_ref(COUNTER.0),
        key: COUNTER.1.as_bytes().to_vec(),
        delta: 1,
        request_id: id.into(),
    });
    match client.add(request).await {
        Ok(response) => {
            let r = response.into_inner();
            Outcome::acked(Some(Value::Int(r.value)), r.version, r.owner, r.epoch)
        }
        Err(status) => Outcome::from_error(&status, true),
    }
}

#[derive(Clone)]
struct Call {
    op: OpName,
    target: (&'static str, &'static str),
    argument: Option<Value>,
    request_id: Option<String>,
}

async fn run_call(
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

fn objects_client(api: &str) -> ObjectsClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_lazy();
    ObjectsClient::new(channel)
}

/// One client process: random register and counter operations through the node its
/// route names (one node, unless a membership change retires it).
async fn client_loop(recorder: Recorder, routes: Routes, process: u64, until: Instant, seed: u64) {
    let (mut node, mut api) = routes.get(process as usize);
    let mut client = objects_client(&api);
    // Follows the route before each call.
    let reroute = |node: &mut u64, api: &mut String, client: &mut ObjectsClient<Channel>| {
        let (now_node, now_api) = routes.get(process as usize);
        if now_api != *api {
            *client = objects_client(&now_api);
            (*node, *api) = (now_node, now_api);
        }
    };
    let mut rng = support::nemesis::Rng::new(seed ^ process.wrapping_mul(0x1000_0000_01B3));
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
        reroute(&mut node, &mut api, &mut client);
        let mut outcome = run_call(&recorder, &mut client, process, node, call.clone()).await;
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
            reroute(&mut node, &mut api, &mut client);
            outcome = run_call(&recorder, &mut client, process, node, call.clone()).await;
        }
        if reads_register && let Some(Value::Int(v)) = outcome.value {
            last_seen = Some(v);
        }
        if outcome.kind != EventKind::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stay_linearizable_through_crashes_pauses_partitions_loss_and_moves() {
    let run_for = Duration::from_secs(env_number("NEMESIS_SECS").unwrap_or(60));
    let faults_on = Fault::parse_list(&std::env::var("NEMESIS_FAULTS").unwrap_or_else(|_| {
        let all: Vec<&str> = DEFAULT_FAULTS.iter().map(|f| f.name()).collect();
        all.join(",")
    }))
    .expect("NEMESIS_FAULTS");
    let seed = env_number("NEMESIS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("nemesis seed {seed} (NEMESIS_SEED={seed} replays the fault schedule)");
    let mut cluster = TestCluster::start_on_own_hosts(NODES as usize, SETTINGS, &["eu-west"])
        .await
        .expect("cluster");
    cluster
        .create_namespace(NAMESPACE)
        .await
        .expect("namespace");
    // Place both objects (through different nodes) before the clock starts.
    let first = cluster.node(1).client().objects(NAMESPACE);
    first
        .by_name(REGISTER.0)
        .put(REGISTER.1, "0")
        .await
        .expect("register");
    let second = cluster.node(2).client().objects(NAMESPACE);
    second
        .by_name(COUNTER.0)
        .add(COUNTER.1, 0)
        .await
        .expect("counter");

    let recorder = Recorder {
        started: Instant::now(),
        events: Arc::default(),
    };
    // The register starts at 0, as if written by a process before the run.
    let mut setup = Event::new(
        99,
        EventKind::Invoke,
        OpName::Write,
        REGISTER.0,
        REGISTER.1,
        0,
    );
    setup.value = Some(Value::Int(0));
    recorder.push(setup);
    recorder.push(Event::new(
        99,
        EventKind::Ok,
        OpName::Write,
        REGISTER.0,
        REGISTER.1,
        0,
    ));

    let until = Instant::now() + run_for;
    let routes = Routes::new(&cluster);
    let mut clients = Vec::new();
    for process in 0..NODES {
        clients.push(tokio::spawn(client_loop(
            recorder.clone(),
            routes.clone(),
            process,
            until,
            seed,
        )));
    }

    // One fault at a time, each healed before the next; the last ends before the
    // clients stop, so the run closes on a healed cluster. With the partitions this run
    // found acknowledged writes lost after two failovers in a row (docs/reliability.md):
    // it is that bug's regression test.
    let mut nemesis = Nemesis::new(seed, NAMESPACE, faults_on, routes);
    let mut round: u64 = 0;
    while Instant::now() + FAULT_MAX < until {
        tokio::time::sleep(nemesis.gap()).await;
        round += 1;
        let object = if round % 2 == 1 {
            REGISTER.0
        } else {
            COUNTER.0
        };
        if let Err(err) = nemesis.step(&mut cluster, object).await {
            let logs = cluster.keep_logs("nemesis");
            panic!(
                "fault (seed {seed}): {err:#}\nfaults before it:\n{}\nnode logs kept in {}",
                nemesis.log.join("\n"),
                logs.display()
            );
        }
    }
    for client in clients {
        client.await.expect("client");
    }

    // Final reads, after every write has completed, until each answers.
    // (Membership changes may have replaced nodes: ids are not 1..=NODES any more.)
    let final_node = cluster.nodes[round as usize % cluster.nodes.len()].id;
    let mut client = objects_client(&cluster.node(final_node).api);
    for target in [REGISTER, COUNTER] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let call = Call {
                op: OpName::Read,
                target,
                argument: None,
                request_id: None,
            };
            let outcome = run_call(&recorder, &mut client, FINAL_PROCESS, final_node, call).await;
            if outcome.kind == EventKind::Ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "final read of {target:?} never answered (seed {seed})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let events = recorder.events.lock().expect("history").clone();
    let path = std::env::temp_dir().join(format!("larder-nemesis-{}.jsonl", std::process::id()));
    larder_checker::write_history_file(&path, &events).expect("write history");
    let history = History::from_events(events.clone()).expect("well-formed history");
    // A long run's history takes longer to search; a timeout would be "unknown", a fail.
    let inputs = CheckInputs {
        limits: larder_checker::LinearizabilityLimits {
            time_max: (run_for / 2).max(Duration::from_secs(60)),
            ..Default::default()
        },
        ..Default::default()
    };
    let report = check_all(&history, &inputs).expect("checkers ran");
    let text = serde_json::to_string_pretty(&report).expect("report");
    let faults = nemesis.log.join("\n");
    println!(
        "seed {seed}, {run_for:?}\nfaults:\n{faults}\nfaults per kind: {:?}\n{}\nhistory: {}\n{text}",
        nemesis.counts,
        figures(&history, &events),
        path.display()
    );
    if report.exit_code() != 0 {
        println!(
            "node logs kept in {}",
            cluster.keep_logs("nemesis").display()
        );
    }
    assert_eq!(
        report.exit_code(),
        0,
        "checkers did not pass (seed {seed}, history in {}):\n{text}\nfaults:\n{faults}\n{}",
        path.display(),
        cluster.logs()
    );
    assert!(nemesis.log.len() >= 2, "the nemesis acted: {faults}");
    if run_for >= Duration::from_secs(60) {
        assert!(
            nemesis.every_kind_injected(),
            "a run of {run_for:?} injects every kind: {:?}",
            nemesis.counts
        );
    }
    assert_checkers_are_not_blind(&events, &history);
}

/// The process id of the final reads.
const FINAL_PROCESS: u64 = 100;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// What the run did, for docs/reliability.md: operations per kind and outcome, and the
/// highest epoch any owner acknowledged a write in.
fn figures(history: &History, events: &[Event]) -> String {
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
fn assert_checkers_are_not_blind(events: &[Event], history: &History) {
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
