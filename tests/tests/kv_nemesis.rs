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
#[path = "kv_nemesis/tamper.rs"]
mod tamper;
#[path = "kv_nemesis/workload.rs"]
mod workload;

use larder_base::Clock as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder_checker::{
    CheckInputs, EventKind, History, KvState, NodeDump, NodeId, ObjectId, OpName, ReplicaSets,
    Snapshot, check_all, check_kv_sessions, compare_dumps,
};
use larder_client::kv::Session;
use larder_proto::v1::kv_client::KvClient;
use support::faketime::FakeClock;
use support::kv_calls::Call;
use support::kv_dump::{api_dump, disk_dump};
use support::objects_workload::Recorder;
use support::{TestCluster, wait_for};
use tokio::sync::RwLock;
use tonic::transport::Channel;
use workload::{Load, Rng, channel, client_loop, run_call};

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
                let cut = cluster.cut(minority, majority, false).expect("partition");
                tokio::time::sleep(hold).await;
                drop(cut);
                format!("{minority:?} | {majority:?} for {hold:?}")
            }
            "isolate" => {
                let node = 1 + rng.below(NODES);
                let others: Vec<u64> = (1..=NODES).filter(|n| *n != node).collect();
                let cut = cluster.cut(&[node], &others, false).expect("partition");
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
    let seed = env_or("KV_NEMESIS_SEED", larder_base::SystemClock.now_ms());
    let fault_list = std::env::var("KV_NEMESIS_FAULTS")
        .unwrap_or_else(|_| "halves,isolate,kill,pause,clock".to_string());
    let kinds: Vec<&str> = fault_list.split(',').map(str::trim).collect();
    println!("KV nemesis: seed {seed} (KV_NEMESIS_SEED), {run_for:?}, faults {kinds:?}");
    let mut rng = Rng(seed);
    let clock_node = 1 + rng.below(NODES);
    let offset = rng.below(2 * SKEW_MAX_MS as u64 + 1) as i64 - SKEW_MAX_MS;
    let (mut cluster, clock) = start_cluster(clock_node, offset).await;

    let load = Load {
        recorder: Recorder::new(),
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

/// After the writes stop: the time until the replicas agree, a barrier, then every
/// node stopped and its store dumped. Returns that time, the KV state for the checker
/// (the api snapshots, then the store dumps) and the dumps.
async fn final_state(
    cluster: &mut TestCluster,
    recorder: &Recorder,
) -> (Option<Duration>, KvState, Vec<NodeDump>) {
    let stopped = Instant::now();
    let (converged_after, mut snapshots) = converge(cluster, stopped).await;
    barrier(cluster, recorder).await;
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
    let kv = KvState {
        replicas: replica_sets(),
        snapshots,
        convergence_bound_ms: Some(CONVERGENCE_BOUND.as_millis() as u64),
    };
    (converged_after, kv, disk)
}

/// Keeps the history, the KV state and the node logs for `larder-check`.
fn keep(cluster: &TestCluster, history: &History, kv: &KvState) {
    let dir = cluster.keep_logs("kv-nemesis");
    larder_checker::write_history_file(&dir.join("history.jsonl"), &history.events)
        .expect("write history");
    let state = serde_json::to_vec(kv).expect("kv state");
    std::fs::write(dir.join("kv.json"), state).expect("write kv state");
    println!(
        "history, dumps and node logs in {} (larder-check history.jsonl --kv kv.json)",
        dir.display()
    );
}

/// The final state through the checkers, the run's figures, and the tampered copies.
async fn finish(
    mut cluster: TestCluster,
    recorder: Recorder,
    records: Vec<FaultRecord>,
    ops: u64,
    (seed, skew): (u64, String),
) {
    let (converged_after, kv, disk) = final_state(&mut cluster, &recorder).await;
    let history = History::from_events(recorder.events()).expect("well-formed history");
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
        keep(&cluster, &history, &kv);
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
    let late: Vec<&String> = records
        .iter()
        .filter(|r| r.converged_after.is_none())
        .map(|r| &r.detail)
        .collect();
    assert!(
        late.is_empty(),
        "not converged within {CONVERGENCE_BOUND:?} after: {late:?} (seed {seed})"
    );
    assert!(records.len() >= 3, "the nemesis acted");
    tamper::checkers_see_tampering(&history, &kv, &disk);
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
                ttl_ms: 0,
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
                    ttl_ms: 0,
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
