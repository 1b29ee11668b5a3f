//! A nemesis run (issue #5, first tier): clients through every node run register and
//! counter operations on two objects while, in turn, an owner is killed (`kill -9`,
//! restarted a second later), an owner is frozen past its lease (SIGSTOP, then
//! SIGCONT), an owner is cut off from every other node, and the cluster is split in
//! halves with the owner on the minority side (nft rules between the nodes' own
//! 127.0.0.x addresses, 2 s each); every call is recorded as a history and judged by
//! `larder-checker` — linearizability per key, no lost acknowledged write, no request
//! id applied twice, no write acknowledged by a superseded owner. `NEMESIS_SECS` sets the length (default 20 s; the soak runs longer).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_checker::{CheckInputs, Event, EventKind, History, NodeId, OpName, Value, check_all};
use larder_proto::v1 as pb;
use larder_proto::v1::objects_client::ObjectsClient;
use support::TestCluster;
use tonic::transport::Channel;

const NODES: u64 = 5;
const NAMESPACE: &str = "nemesis";
const REGISTER: (&str, &str) = ("reg", "r");
const COUNTER: (&str, &str) = ("ctr", "n");
/// One attempt of a call; a slower one is recorded as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
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

/// One client process: random register and counter operations through one node.
async fn client_loop(recorder: Recorder, api: String, process: u64, node: u64, until: Instant) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_lazy();
    let mut client = ObjectsClient::new(channel);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ process;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
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
        let outcome = run_call(&recorder, &mut client, process, node, call).await;
        if reads_register && let Some(Value::Int(v)) = outcome.value {
            last_seen = Some(v);
        }
        if outcome.kind != EventKind::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn owner_of(cluster: &TestCluster, object: &str) -> Option<u64> {
    for node in cluster.running() {
        if let Ok(info) = node
            .client()
            .objects(NAMESPACE)
            .by_name(object)
            .inspect()
            .await
        {
            return Some(info.owner);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stay_linearizable_through_kills_pauses_and_partitions() {
    let run_for = Duration::from_secs(
        std::env::var("NEMESIS_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
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
    let mut clients = Vec::new();
    for process in 0..NODES {
        let node = process % NODES + 1;
        let api = cluster.node(node).api.clone();
        clients.push(tokio::spawn(client_loop(
            recorder.clone(),
            api,
            process,
            node,
            until,
        )));
    }

    // The nemesis, in turn: kill an owner, freeze one, cut one off, split in halves
    // (`NEMESIS_FAULTS` picks some). With the partitions this run found acknowledged
    // writes lost after two failovers in a row (docs/reliability.md): it is that bug's
    // regression test.
    let fault_list =
        std::env::var("NEMESIS_FAULTS").unwrap_or_else(|_| "kill,pause,isolate,halves".to_string());
    let faults_on: Vec<&str> = fault_list.split(',').map(str::trim).collect();
    let mut faults = Vec::new();
    let mut round: u64 = 0;
    while Instant::now() + Duration::from_secs(3) < until {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        round += 1;
        let object = if round % 2 == 1 {
            REGISTER.0
        } else {
            COUNTER.0
        };
        let Some(owner) = owner_of(&cluster, object).await else {
            continue;
        };
        let fault = faults_on[(round as usize - 1) % faults_on.len()];
        match fault {
            "kill" => {
                cluster.node_mut(owner).kill();
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.node_mut(owner).start().expect("restart");
                faults.push(format!("kill -9 node {owner} (owner of {object})"));
            }
            "pause" => {
                cluster.node(owner).pause().expect("pause");
                tokio::time::sleep(Duration::from_millis(1200)).await;
                cluster.node(owner).resume().expect("resume");
                faults.push(format!(
                    "SIGSTOP node {owner} (owner of {object}) for 1.2 s"
                ));
            }
            "isolate" => {
                let others: Vec<u64> = (1..=NODES).filter(|n| *n != owner).collect();
                let cut = cluster.cut(&[owner], &others, false).expect("partition");
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(cut);
                faults.push(format!("node {owner} (owner of {object}) cut off for 2 s"));
            }
            "halves" => {
                // The owner on the minority side.
                let minority = [owner, owner % NODES + 1];
                let majority: Vec<u64> = (1..=NODES).filter(|n| !minority.contains(n)).collect();
                let cut = cluster.cut(&minority, &majority, false).expect("partition");
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(cut);
                faults.push(format!("{minority:?} | {majority:?} for 2 s"));
            }
            other => panic!("unknown fault {other:?} in NEMESIS_FAULTS"),
        }
    }
    for client in clients {
        client.await.expect("client");
    }

    // Final reads, after every write has completed, until each answers.
    let final_node = 1 + (round % NODES);
    let api = cluster.node(final_node).api.clone();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_lazy();
    let mut client = ObjectsClient::new(channel);
    for target in [REGISTER, COUNTER] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let call = Call {
                op: OpName::Read,
                target,
                argument: None,
                request_id: None,
            };
            let outcome = run_call(&recorder, &mut client, 100, final_node, call).await;
            if outcome.kind == EventKind::Ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "final read of {target:?} never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let events = recorder.events.lock().expect("history").clone();
    let path = std::env::temp_dir().join(format!("larder-nemesis-{}.jsonl", std::process::id()));
    larder_checker::write_history_file(&path, &events).expect("write history");
    let history = History::from_events(events).expect("well-formed history");
    let report = check_all(&history, &CheckInputs::default()).expect("checkers ran");
    let text = serde_json::to_string_pretty(&report).expect("report");
    println!("faults: {faults:#?}\nhistory: {}\n{text}", path.display());
    if report.exit_code() != 0 {
        println!(
            "node logs kept in {}",
            cluster.keep_logs("nemesis").display()
        );
    }
    assert_eq!(
        report.exit_code(),
        0,
        "checkers did not pass (history in {}):\n{text}\nfaults: {faults:#?}\n{}",
        path.display(),
        cluster.logs()
    );
    assert!(faults.len() >= 2, "the nemesis acted: {faults:?}");
}
