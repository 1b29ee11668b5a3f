//! The KV nemesis (issue #5): five nodes on their own 127.0.0.x hosts in two regions,
//! one namespace on every node and one restricted to `eu-west` (nodes 1, 3, 5). Six
//! client processes put unique values, delete and read (with their session tokens) through
//! random nodes, while the nemesis, in turn, splits the cluster 2 | 3, cuts one node off,
//! `kill -9`s a node and restarts it after 0–5 s, freezes one (SIGSTOP/SIGCONT), and
//! jumps the wall clock of the one node that runs skewed under libfaketime. After each
//! fault heals, the clients pause until every node's contents are equal (the convergence
//! time after that heal). At the end: convergence after the writes stop, every node's
//! store dumped with its tombstones, and `larder-checker` judges the history and the
//! dumps — convergence, no acknowledged write lost, no deleted key back, residency, own
//! versions increasing per node, read-your-writes. Then the same data, tampered with,
//! must fail those checkers.
//!
//! `KV_NEMESIS_SECS` (default 30) sets the length, `KV_NEMESIS_SEED` the seed (printed),
//! `KV_NEMESIS_FAULTS` the faults (default `halves,isolate,kill,pause,clock`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_checker::{
    CheckInputs, Event, EventKind, History, KvState, NodeDump, NodeId, ObjectId, OpName,
    ReplicaSets, Snapshot, Value, Version, check_all, check_kv_sessions, compare_dumps,
};
use larder_client::kv::Session;
use larder_proto::v1 as pb;
use larder_proto::v1::kv_client::KvClient;
use support::faketime::FakeClock;
use support::kv_dump::{api_dump, disk_dump};
use support::{Partition, TestCluster, wait_for};
use tokio::sync::RwLock;
use tonic::transport::Channel;

const NODES: u64 = 5;
const CLIENTS: u64 = 6;
/// On every node.
const OPEN: &str = "kvn";
/// Only on the `eu-west` nodes (odd ids).
const EU: &str = "kvn-eu";
const EU_NODES: [u64; 3] = [1, 3, 5];
/// Keys every client writes often (LWW conflicts), and a wider set written rarely (a
/// lost write stays visible there).
const HOT_KEYS: u64 = 8;
const COLD_KEYS: u64 = 400;
/// One call; a slower one is recorded as unknown (writes) or failed (reads).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Promised here: after a heal (and after the writes stop) every replica holds the same
/// contents within this time. Anti-entropy runs every 300 ms in tests.
const CONVERGENCE_BOUND: Duration = Duration::from_secs(10);
/// The skewed node's clock stays within this of the real one: well inside
/// `kv.clock_forward_drift_max_ms` (60 s), so the other nodes follow its stamps.
const SKEW_MAX_MS: i64 = 8000;
const SETTINGS: &[support::Setting] = &[
    // No tombstone is collected during a run: the final dumps compare tombstones too.
    ("kv.tombstone_grace_ms", "7200000"),
    ("directory.node_down_after_ms", "800"),
];

/// SplitMix64: a seeded, reproducible choice of faults and operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

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

    fn events(&self) -> Vec<Event> {
        self.events.lock().expect("history lock").clone()
    }
}

fn allowed(namespace: &str, node: u64) -> bool {
    namespace == OPEN || EU_NODES.contains(&node)
}

fn namespaces_of(node: u64) -> Vec<&'static str> {
    [OPEN, EU]
        .into_iter()
        .filter(|ns| allowed(ns, node))
        .collect()
}

fn replica_sets() -> ReplicaSets {
    ReplicaSets {
        namespaces: BTreeMap::from([(
            ObjectId::from(EU),
            EU_NODES.iter().map(|n| NodeId(*n)).collect::<BTreeSet<_>>(),
        )]),
    }
}

fn version(v: Option<&pb::Version>) -> Option<Version> {
    v.map(|v| Version(vec![v.physical_ms, u64::from(v.logical), v.origin]))
}

/// One KV call and how it ended.
struct Call {
    op: OpName,
    namespace: &'static str,
    key: String,
    value: Option<String>,
}

struct Outcome {
    kind: EventKind,
    value: Option<String>,
    version: Option<Version>,
    token: Vec<u8>,
    error: Option<String>,
}

impl Outcome {
    fn from_error(status: &tonic::Status, write: bool) -> Outcome {
        // These are refused before anything is queued; any other error of a write may
        // or may not have applied it.
        let definite = matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::FailedPrecondition
                | tonic::Code::ResourceExhausted
        );
        Outcome {
            kind: if definite || !write {
                EventKind::Fail
            } else {
                EventKind::Info
            },
            value: None,
            version: None,
            token: Vec::new(),
            error: Some(format!("{:?}: {}", status.code(), status.message())),
        }
    }

    fn written(response: pb::WriteResponse) -> Outcome {
        Outcome {
            kind: EventKind::Ok,
            value: None,
            version: version(response.versions.first()),
            token: response.consistency_token,
            error: None,
        }
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

async fn send(client: &mut KvClient<Channel>, call: &Call, token: Vec<u8>) -> Outcome {
    let namespace = call.namespace.to_string();
    let key = call.key.clone().into_bytes();
    let result = match call.op {
        OpName::Put => client
            .put(timed(pb::PutRequest {
                namespace,
                key,
                value: call.value.clone().unwrap_or_default().into_bytes(),
                ..Default::default()
            }))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        OpName::Delete => client
            .delete(timed(pb::DeleteRequest { namespace, key }))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        _ => client
            .get(timed(pb::GetRequest {
                namespace,
                key,
                consistency_token: token,
            }))
            .await
            .map(|r| {
                let found = r.into_inner().value;
                Outcome {
                    kind: EventKind::Ok,
                    value: found
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v.value).into_owned()),
                    version: version(found.as_ref().and_then(|v| v.version.as_ref())),
                    token: Vec::new(),
                    error: None,
                }
            }),
    };
    result.unwrap_or_else(|status| Outcome::from_error(&status, call.op != OpName::Get))
}

/// Records the call's invocation and completion around sending it to `node`.
async fn run_call(
    recorder: &Recorder,
    client: &mut KvClient<Channel>,
    process: u64,
    node: u64,
    call: &Call,
    session: &Session,
) -> Outcome {
    let mut invoke = Event::new(
        process,
        EventKind::Invoke,
        call.op,
        call.namespace,
        &call.key,
        0,
    );
    invoke.value = call.value.clone().map(Value::Text);
    invoke.node = Some(NodeId(node));
    recorder.push(invoke);
    let outcome = send(client, call, session.token()).await;
    let mut done = Event::new(process, outcome.kind, call.op, call.namespace, &call.key, 0);
    if outcome.kind == EventKind::Ok {
        done.value = outcome.value.clone().map(Value::Text);
        done.version = outcome.version.clone();
        done.node = Some(NodeId(node));
        session.observe(&outcome.token);
    }
    done.error = outcome.error.clone();
    recorder.push(done);
    outcome
}

fn channel(api: &str) -> KvClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_lazy();
    KvClient::new(channel)
}

/// What the clients share: the history, the pause gate (the nemesis holds it for writing
/// while it measures convergence), every node's api address and the end of the run.
#[derive(Clone)]
struct Load {
    recorder: Recorder,
    gate: Arc<RwLock<()>>,
    apis: Vec<String>,
    until: Instant,
    think: Duration,
}

fn next_call(rng: &mut Rng, process: u64, seq: u64) -> Call {
    let namespace = if rng.below(10) < 7 { OPEN } else { EU };
    let key = if rng.below(2) == 0 {
        format!("h{}", rng.below(HOT_KEYS))
    } else {
        format!("c{:03}", rng.below(COLD_KEYS))
    };
    let (op, value) = match rng.below(20) {
        0..=8 => (OpName::Put, Some(format!("p{process}-{seq}"))),
        9..=11 => (OpName::Delete, None),
        _ => (OpName::Get, None),
    };
    Call {
        op,
        namespace,
        key,
        value,
    }
}

/// One client process: puts, deletes and session reads through random nodes.
async fn client_loop(load: Load, process: u64, seed: u64) -> u64 {
    let mut rng = Rng(seed ^ (process + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut clients: Vec<KvClient<Channel>> = load.apis.iter().map(|a| channel(a)).collect();
    let session = Session::new();
    let mut seq = 0;
    loop {
        let running = load.gate.read().await;
        if Instant::now() >= load.until {
            return seq;
        }
        seq += 1;
        let node = 1 + rng.below(NODES);
        let call = next_call(&mut rng, process, seq);
        let client = &mut clients[node as usize - 1];
        let outcome = run_call(&load.recorder, client, process, node, &call, &session).await;
        drop(running);
        // Pacing, not synchronisation: a refused connection answers at once.
        let pause = if outcome.kind == EventKind::Ok {
            load.think
        } else {
            load.think.max(Duration::from_millis(20))
        };
        tokio::time::sleep(pause).await;
    }
}

/// Every running node's live contents, or None if one does not answer.
async fn api_dumps(cluster: &TestCluster) -> Option<Vec<NodeDump>> {
    let mut dumps = Vec::new();
    for node in cluster.running() {
        dumps.push(api_dump(node, &namespaces_of(node.id)).await.ok()?);
    }
    Some(dumps)
}

/// Polls every node's contents until all replicas agree; returns the time from `since`
/// and the snapshots taken (times relative to `since`). None: not within the bound.
async fn converge(cluster: &TestCluster, since: Instant) -> (Option<Duration>, Vec<Snapshot>) {
    let replicas = replica_sets();
    let mut snapshots = Vec::new();
    while since.elapsed() < CONVERGENCE_BOUND {
        let taken = since.elapsed();
        if let Some(nodes) = api_dumps(cluster).await {
            let converged = compare_dumps(&nodes, &replicas).converged;
            snapshots.push(Snapshot {
                after_heal_ms: taken.as_millis() as u64,
                nodes,
            });
            if converged {
                return (Some(taken), snapshots);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (None, snapshots)
}

/// A fault that ran, and how long the replicas took to agree after it healed.
struct FaultRecord {
    kind: String,
    detail: String,
    converged_after: Option<Duration>,
}

struct Nemesis {
    rng: Rng,
    clock_node: u64,
    clock: FakeClock,
    records: Vec<FaultRecord>,
}

impl Nemesis {
    /// Runs one fault of `kind` and heals it; returns its description.
    async fn inject(&mut self, cluster: &mut TestCluster, kind: &str) -> String {
        let rng = &mut self.rng;
        let hold = rng.millis(1000, 3000);
        match kind {
            "halves" => {
                let mut nodes: Vec<u64> = (1..=NODES).collect();
                for i in (1..nodes.len()).rev() {
                    nodes.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let (minority, majority) = nodes.split_at(2);
                let cut = Partition::cut(minority, majority, false).expect("partition");
                tokio::time::sleep(hold).await;
                drop(cut);
                format!("{minority:?} | {majority:?} for {hold:?}")
            }
            "isolate" => {
                let node = 1 + rng.below(NODES);
                let others: Vec<u64> = (1..=NODES).filter(|n| *n != node).collect();
                let cut = Partition::cut(&[node], &others, false).expect("partition");
                tokio::time::sleep(hold).await;
                drop(cut);
                format!("node {node} cut off for {hold:?}")
            }
            "kill" => {
                let node = 1 + rng.below(NODES);
                let down = rng.millis(0, 5000);
                cluster.node_mut(node).kill();
                tokio::time::sleep(down).await;
                cluster.node_mut(node).start().expect("restart");
                format!("kill -9 node {node}, restarted after {down:?}")
            }
            "pause" => {
                let node = 1 + rng.below(NODES);
                let frozen = rng.millis(500, 3000);
                cluster.node(node).pause().expect("pause");
                tokio::time::sleep(frozen).await;
                cluster.node(node).resume().expect("resume");
                format!("SIGSTOP node {node} for {frozen:?}")
            }
            "clock" => {
                let from = self.clock.offset_ms();
                let to = rng.below(2 * SKEW_MAX_MS as u64 + 1) as i64 - SKEW_MAX_MS;
                self.clock.set_offset_ms(to).expect("clock jump");
                tokio::time::sleep(hold).await;
                format!(
                    "node {} clock jumped from {from:+} ms to {to:+} ms",
                    self.clock_node
                )
            }
            other => panic!("unknown fault {other:?} in KV_NEMESIS_FAULTS"),
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the cluster and the namespaces; node `clock_node` is restarted under
/// libfaketime, `offset_ms` off the real clock.
async fn start_cluster(clock_node: u64, offset_ms: i64) -> (TestCluster, FakeClock) {
    let mut cluster =
        TestCluster::start_on_own_hosts(NODES as usize, SETTINGS, &["eu-west", "us-east"])
            .await
            .expect("cluster");
    let node = cluster.node_mut(clock_node);
    node.kill();
    let clock = FakeClock::install(node, offset_ms).expect("libfaketime");
    node.start().expect("restart under libfaketime");
    cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy with a skewed node");
    cluster.create_namespace(OPEN).await.expect("namespace");
    cluster
        .create_namespace_in(EU, &["eu-west"])
        .await
        .expect("eu namespace");
    (cluster, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_converges_and_loses_nothing_through_partitions_kills_pauses_and_clock_jumps() {
    let run_for = Duration::from_secs(env_or("KV_NEMESIS_SECS", 30));
    let seed = env_or("KV_NEMESIS_SEED", larder_kv::now_ms());
    let fault_list = std::env::var("KV_NEMESIS_FAULTS")
        .unwrap_or_else(|_| "halves,isolate,kill,pause,clock".to_string());
    let kinds: Vec<&str> = fault_list.split(',').map(str::trim).collect();
    println!("KV nemesis: seed {seed} (KV_NEMESIS_SEED), {run_for:?}, faults {kinds:?}");
    let mut rng = Rng(seed);
    let clock_node = 1 + rng.below(NODES);
    let offset = rng.below(2 * SKEW_MAX_MS as u64 + 1) as i64 - SKEW_MAX_MS;
    let (mut cluster, clock) = start_cluster(clock_node, offset).await;

    let load = Load {
        recorder: Recorder {
            started: Instant::now(),
            events: Arc::default(),
        },
        gate: Arc::new(RwLock::new(())),
        apis: (1..=NODES).map(|n| cluster.node(n).api.clone()).collect(),
        until: Instant::now() + run_for,
        think: Duration::from_millis(env_or("KV_NEMESIS_THINK_MS", 5)),
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|p| tokio::spawn(client_loop(load.clone(), p, seed)))
        .collect();

    let mut nemesis = Nemesis {
        rng,
        clock_node,
        clock,
        records: Vec::new(),
    };
    let mut round = 0;
    while Instant::now() + Duration::from_secs(4) < load.until {
        tokio::time::sleep(nemesis.rng.millis(500, 1500)).await;
        let kind = kinds[round % kinds.len()];
        round += 1;
        let detail = nemesis.inject(&mut cluster, kind).await;
        let healed = Instant::now();
        // Writes pause while the replicas catch up: the time to agree after this heal.
        let paused = load.gate.write().await;
        let (converged_after, _) = converge(&cluster, healed).await;
        drop(paused);
        println!("fault: {detail}; converged after {converged_after:?}");
        nemesis.records.push(FaultRecord {
            kind: kind.to_string(),
            detail,
            converged_after,
        });
    }
    let mut ops = 0;
    for client in clients {
        ops += client.await.expect("client");
    }
    let skew = format!("node {clock_node} runs under libfaketime, starting {offset:+} ms off");
    finish(cluster, load.recorder, nemesis.records, ops, (seed, skew)).await;
}

/// Convergence after the writes stopped, a barrier, the stores' dumps and the checkers.
async fn finish(
    mut cluster: TestCluster,
    recorder: Recorder,
    records: Vec<FaultRecord>,
    ops: u64,
    (seed, skew): (u64, String),
) {
    let stopped = Instant::now();
    let (converged_after, mut snapshots) = converge(&cluster, stopped).await;
    barrier(&cluster, &recorder).await;
    for node in &mut cluster.nodes {
        node.kill();
    }
    let disk: Vec<NodeDump> = cluster
        .nodes
        .iter()
        .map(|n| disk_dump(n, &[OPEN, EU]).expect("dump the store"))
        .collect();
    snapshots.push(Snapshot {
        after_heal_ms: stopped.elapsed().as_millis() as u64,
        nodes: disk.clone(),
    });
    let events = recorder.events();
    let history = History::from_events(events.clone()).expect("well-formed history");
    let kv = KvState {
        replicas: replica_sets(),
        snapshots,
        convergence_bound_ms: Some(CONVERGENCE_BOUND.as_millis() as u64),
    };
    let inputs = CheckInputs {
        kv: Some(kv.clone()),
        ..Default::default()
    };
    let report = check_all(&history, &inputs).expect("checkers ran");
    let sessions = check_kv_sessions(&history);
    let summary = summarize(&history, &records, converged_after, &disk, ops, seed);
    let verdicts: Vec<String> = report
        .checkers
        .iter()
        .map(|c| format!("{} {:?} ({:.0} ms)", c.name, c.verdict, c.elapsed_ms))
        .collect();
    println!(
        "{skew}\n{summary}\ncheckers: {verdicts:?}; kv_sessions {:?} ({} own writes, {} session reads, {} violations)",
        sessions.verdict,
        sessions.writes_checked,
        sessions.reads_checked,
        sessions.violations_total
    );
    let passed = report.exit_code() == 0 && sessions.verdict == larder_checker::Verdict::Pass;
    if !passed || std::env::var_os("KV_NEMESIS_KEEP").is_some() {
        let dir = cluster.keep_logs("kv-nemesis");
        larder_checker::write_history_file(&dir.join("history.jsonl"), &events)
            .expect("write history");
        std::fs::write(
            dir.join("kv.json"),
            serde_json::to_vec(&kv).expect("kv state"),
        )
        .expect("write kv state");
        println!(
            "history, dumps and node logs in {} (larder-check history.jsonl --kv kv.json)",
            dir.display()
        );
    }
    assert!(
        passed,
        "checkers did not pass (seed {seed}):\n{}\n{}",
        serde_json::to_string_pretty(&report).expect("report"),
        serde_json::to_string_pretty(&sessions).expect("sessions report")
    );
    assert!(
        converged_after.is_some(),
        "not converged within {CONVERGENCE_BOUND:?} after the writes stopped (seed {seed})"
    );
    let late: Vec<&FaultRecord> = records
        .iter()
        .filter(|r| r.converged_after.is_none())
        .collect();
    assert!(
        late.is_empty(),
        "not converged within {CONVERGENCE_BOUND:?} after: {:?} (seed {seed})",
        late.iter().map(|r| &r.detail).collect::<Vec<_>>()
    );
    assert!(records.len() >= 3, "the nemesis acted");
    checkers_see_tampering(&history, &kv, &disk);
}

/// One marker write at every node, then a read of every marker at every node carrying
/// all their tokens: once it answers, each node holds every write any node accepted
/// before its marker — tombstones included, which the api cannot show.
async fn barrier(cluster: &TestCluster, recorder: &Recorder) {
    let session = Session::new();
    for node in cluster.running() {
        let mut client = channel(&node.api);
        for namespace in namespaces_of(node.id) {
            let call = Call {
                op: OpName::Put,
                namespace,
                key: format!("zz-barrier-{}", node.id),
                value: Some(format!("barrier-{}", node.id)),
            };
            retry_ok(recorder, &mut client, node.id, &call, &session).await;
        }
    }
    for node in cluster.running() {
        let mut client = channel(&node.api);
        for namespace in namespaces_of(node.id) {
            for marker in (1..=NODES).filter(|m| allowed(namespace, *m)) {
                let call = Call {
                    op: OpName::Get,
                    namespace,
                    key: format!("zz-barrier-{marker}"),
                    value: None,
                };
                retry_ok(recorder, &mut client, node.id, &call, &session).await;
            }
        }
    }
}

/// The barrier's calls, recorded as process 100's, retried until one is ok.
async fn retry_ok(
    recorder: &Recorder,
    client: &mut KvClient<Channel>,
    node: u64,
    call: &Call,
    session: &Session,
) {
    wait_for("a barrier call to answer", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let outcome = run_call(recorder, &mut client, 100, node, call, session).await;
            (outcome.kind == EventKind::Ok).then_some(())
        }
    })
    .await
    .expect("barrier");
}

fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) * p / 100])
}

/// The run's figures (docs/reliability.md quotes them).
fn summarize(
    history: &History,
    records: &[FaultRecord],
    converged_after: Option<Duration>,
    disk: &[NodeDump],
    ops: u64,
    seed: u64,
) -> String {
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for record in records {
        *per_kind.entry(record.kind.as_str()).or_default() += 1;
    }
    let mut times: Vec<Duration> = records.iter().filter_map(|r| r.converged_after).collect();
    times.sort();
    let count = |op: OpName, outcome: larder_checker::Outcome| {
        history
            .operations
            .iter()
            .filter(|o| o.op == op && o.outcome == outcome)
            .count()
    };
    let entries: Vec<usize> = disk
        .iter()
        .map(|d| d.namespaces.values().map(BTreeMap::len).sum())
        .collect();
    use larder_checker::Outcome::{Fail, Ok as Done, Unknown};
    format!(
        "KV nemesis summary (seed {seed}): {ops} client operations; \
         put ok/fail/unknown {}/{}/{}, delete {}/{}/{}, get ok/fail {}/{}; \
         faults {per_kind:?}; convergence after each heal: p50 {:?}, max {:?} over {} heals; \
         after the writes stopped: {converged_after:?}; stored entries per node {entries:?}\n\
         faults in order: {:#?}",
        count(OpName::Put, Done),
        count(OpName::Put, Fail),
        count(OpName::Put, Unknown),
        count(OpName::Delete, Done),
        count(OpName::Delete, Fail),
        count(OpName::Delete, Unknown),
        count(OpName::Get, Done),
        count(OpName::Get, Fail),
        percentile(&times, 50),
        times.last(),
        times.len(),
        records
            .iter()
            .map(|r| format!("{} ({:?})", r.detail, r.converged_after))
            .collect::<Vec<_>>(),
    )
}

/// The checkers are not blind to this run's data: each tampered copy must fail.
fn checkers_see_tampering(history: &History, kv: &KvState, disk: &[NodeDump]) {
    let replicas = replica_sets();
    let open = ObjectId::from(OPEN);
    let judge =
        |dumps: &[NodeDump]| larder_checker::check_kv_writes(history, dumps, &replicas).verdict;
    let fail = larder_checker::Verdict::Fail;

    // An acknowledged put whose entry survived, rolled back on one node: lost write.
    let final_entry = |op: &larder_checker::Operation| {
        disk[0]
            .namespaces
            .get(&op.object)
            .and_then(|e| e.get(&op.key))
            .cloned()
    };
    let survivor = history.operations.iter().rev().find(|op| {
        op.op == OpName::Put
            && op.is_ok()
            && op.object == open
            && final_entry(op).map(|e| e.version) == op.version
    });
    let survivor = survivor.expect("some acknowledged put is the final entry of its key");
    let mut lost = disk.to_vec();
    let entry = lost[1]
        .namespaces
        .get_mut(&open)
        .and_then(|e| e.get_mut(&survivor.key))
        .expect("replicated to node 2");
    entry.version.0[0] -= 1;
    assert_eq!(judge(&lost), fail, "a rolled-back put must fail kv_writes");

    // A deleted key back on one node: an acknowledged delete's tombstone replaced by an
    // older live entry.
    let delete = history.operations.iter().find(|op| {
        op.op == OpName::Delete
            && op.is_ok()
            && op.object == open
            && final_entry(op).is_some_and(|e| e.tombstone && Some(e.version) == op.version)
    });
    let delete = delete.expect("some key ends deleted by an acknowledged delete");
    let mut back = disk.to_vec();
    let entry = back[2]
        .namespaces
        .get_mut(&open)
        .and_then(|e| e.get_mut(&delete.key))
        .expect("tombstone at node 3");
    entry.tombstone = false;
    entry.value = Some("resurrected".into());
    entry.version.0[0] -= 1;
    assert_eq!(judge(&back), fail, "a resurrected key must fail kv_writes");

    // One replica differing in the last snapshot: not converged.
    let mut diverged = kv.clone();
    let last = diverged.snapshots.last_mut().expect("snapshots");
    last.nodes[3]
        .namespaces
        .entry(open.clone())
        .or_default()
        .insert(
            "only-here".into(),
            larder_checker::KvEntry {
                value: Some("x".into()),
                version: Version(vec![1, 0, 4]),
                tombstone: false,
            },
        );
    let report = larder_checker::check_convergence(
        &diverged.snapshots,
        &replicas,
        CONVERGENCE_BOUND.as_millis() as u64,
    );
    assert_eq!(
        report.verdict, fail,
        "a diverged replica must fail convergence"
    );

    // Restricted data on a us-east node: residency.
    let mut outside = disk.to_vec();
    let eu_entries = disk[0]
        .namespaces
        .get(&ObjectId::from(EU))
        .cloned()
        .unwrap_or_default();
    assert!(!eu_entries.is_empty(), "the eu namespace was written");
    outside[1].namespaces.insert(ObjectId::from(EU), eu_entries);
    let residency = larder_checker::check_residency(history, &[(None, &outside)], &replicas);
    assert_eq!(
        residency.verdict, fail,
        "eu data on node 2 must fail residency"
    );

    // A session read older than the process's own write: read-your-writes.
    let mut events = history.events.clone();
    let stale = events.iter().position(|e| {
        e.op == OpName::Get
            && e.kind == EventKind::Ok
            && e.process.0 < CLIENTS
            && e.version.is_some()
    });
    let stale = stale.expect("some read found a value");
    let (process, key, namespace) = (
        events[stale].process,
        events[stale].key.clone(),
        events[stale].object.clone(),
    );
    let invoke_at = events[..stale]
        .iter()
        .rposition(|e| e.process == process && e.kind == EventKind::Invoke)
        .expect("the read's invocation");
    // An own write of that key, acknowledged just before it with a version 1 ms newer
    // than the one read, stamped by a node of its own (no other checker trips on it).
    let time = events[invoke_at].time_ns;
    let mut newer = events[stale].version.clone().expect("version");
    newer.0[0] += 1;
    newer.0[2] = 99;
    let mut put = Event::new(
        process.0,
        EventKind::Invoke,
        OpName::Put,
        &namespace.0,
        &key,
        time,
    );
    put.value = Some(Value::Text("tampered".into()));
    let mut ok = Event::new(
        process.0,
        EventKind::Ok,
        OpName::Put,
        &namespace.0,
        &key,
        time,
    );
    ok.version = Some(newer);
    ok.node = Some(NodeId(99));
    events.insert(invoke_at, ok);
    events.insert(invoke_at, put);
    let tampered = check_kv_sessions(&History::from_events(events).expect("well formed"));
    let missed = |v: &larder_checker::KvSessionViolation| {
        matches!(v, larder_checker::KvSessionViolation::MissedOwnWrite { .. })
    };
    assert!(
        !tampered.violations.is_empty() && tampered.violations.iter().all(missed),
        "a read missing its own write must fail read-your-writes (and only that): {tampered:?}"
    );
}
