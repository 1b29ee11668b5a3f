//! The simulation tier (issue #5): the directory and object ownership of five nodes run
//! inside turmoil, which simulates the network, time and the hosts; a seed decides the
//! message latencies and the fault schedule, and `SIM_SEED=<seed>` replays a run.
//!
//! Each node is the real code — the directory's Raft member, liveness, failover, the
//! object host with its replication stream, the gRPC services — started on a simulated
//! host: tonic serves on a turmoil listener and dials through a turmoil connector (the
//! peer channels' injected connector), and the store is a [`MemoryDisk`], which keeps
//! only flushed writes when its host crashes (plus, as a real disk may, a random prefix
//! of the unflushed ones, never half a batch).
//!
//! Faults, one at a time and each healed before the next: crash of an object's owner or
//! of any node (with the disk losing what was not flushed) and restart after 0–5 s; an
//! owner or any node cut off with its messages held and delivered late, past its lease;
//! halves; the directory leader cut off; links that drop every message (connections stay
//! dead until HTTP/2 keep-alive gives up on them). Clients run the nemesis workload
//! (`support::objects_workload`) and the same checkers judge the history.
//!
//! `SIM_SEEDS` sets how many seeds run (default 4; `SIM_SEED` runs one), `SIM_SECS` the
//! simulated length of each run's workload (default 20 s), `SIM_LOG` (an env-filter) the
//! nodes' logs of a replayed seed (`SIM_SEED=<seed> SIM_LOG=info,openraft=warn`).

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_checker::{CheckInputs, History, check_all};
use larder_directory::{
    Command, Directory, DirectoryConfig, DirectoryRequest, NamespacePolicy, NamespaceSpec, NodeId,
    NodeSpec, ObjectKey, PeerNode, RegionId, liveness, peer_services,
};
use larder_objects::grpc::objects_service::ObjectsService;
use larder_objects::grpc::peer_service::ObjectPeerService;
use larder_objects::{ObjectHost, ObjectStore, ObjectsConfig};
use larder_proto::v1::objects_server::ObjectsServer;
use larder_store::{MemoryDisk, Store};
use support::env_number;
use support::objects_workload::{
    COUNTER, NAMESPACE, REGISTER, Recorder, Route, assert_checkers_are_not_blind, figures,
    final_reads, spawn_clients,
};
use support::rng::Rng;
use support::sim_faults::{Fault, cut_off, heal, host, inject};
use support::sim_net::{self, RESULT_PREFIX, channel_to, connector, digest, run_in_child};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Channel;

const NODES: u64 = 5;
const PORT: u16 = 7000;
const REGION: &str = "eu-west";
/// Client processes, each through its own node (round robin).
const PROCESSES: u64 = 5;
/// How long after the workload the healed cluster has to answer the final reads.
const SETTLE: Duration = Duration::from_secs(60);

fn addr(id: u64) -> String {
    format!("{}:{PORT}", host(id))
}

fn channel(id: u64) -> Channel {
    channel_to(&addr(id))
}

/// What the harness can see of the nodes from outside: each node's view of the Raft
/// term and leader, and the latest placements (epoch, owner) of the two objects.
#[derive(Default)]
struct Spy {
    leaders: BTreeMap<u64, (u64, Option<u64>)>,
    owners: BTreeMap<&'static str, (u64, u64)>,
}

type SharedSpy = Arc<Mutex<Spy>>;

fn directory_config() -> DirectoryConfig {
    DirectoryConfig {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        node_down_after_ms: 800,
        liveness_check_interval_ms: 100,
        peer_rpc_timeout_ms: 1000,
        ..DirectoryConfig::default()
    }
}

fn objects_config() -> ObjectsConfig {
    ObjectsConfig {
        lease_ms: 400,
        write_timeout_ms: 2000,
        peer_rpc_timeout_ms: 1000,
        ..ObjectsConfig::default()
    }
}

/// One node's software: what `larder serve` starts, minus KV, admin and metrics.
async fn node(id: u64, disk: MemoryDisk, spy: SharedSpy) -> turmoil::Result {
    let store = Store::open_memory(&disk)?;
    let me = NodeSpec {
        id: NodeId(id),
        region: RegionId(REGION.into()),
        jurisdictions: Default::default(),
        api_addr: addr(id),
        peer_addr: addr(id),
    };
    let directory = Directory::start_with_connector(
        me,
        store.clone(),
        directory_config(),
        None,
        Some(connector()),
    )
    .await?;
    let voters = (1..=NODES)
        .map(|i| (NodeId(i), PeerNode { peer_addr: addr(i) }))
        .collect();
    directory.bootstrap(voters).await?;
    // Held for as long as the software runs: the background tasks end when it drops.
    let (_stop_tx, stop) = watch::channel(false);
    let channels = directory.channels().clone();
    let factory = channels.factory();
    let objects = ObjectHost::new(
        directory.clone(),
        ObjectStore::open(store.clone())?,
        objects_config(),
        factory,
        Arc::new(support::sim_net::SimWallClock),
    );
    tokio::spawn({
        let (directory, stop) = (directory.clone(), stop.clone());
        async move { directory.register_self(stop).await }
    });
    tokio::spawn(liveness::run(directory.clone(), stop.clone()));
    tokio::spawn(larder_objects::failover::run(objects.clone(), stop.clone()));
    if id == 1 {
        tokio::spawn(create_namespace(directory.clone()));
    }
    tokio::spawn(watch_node(id, directory.clone(), spy));

    let (raft, forward) = peer_services(&directory);
    let incoming = sim_net::incoming(PORT).await?;
    tonic::transport::Server::builder()
        .add_service(raft)
        .add_service(forward)
        .add_service(ObjectPeerService::server(
            objects.clone(),
            directory_config().peer_message_bytes_max,
            stop.clone(),
        ))
        .add_service(ObjectsServer::new(ObjectsService::new(objects)))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

async fn create_namespace(directory: Directory) {
    let record = NamespaceSpec {
        name: NAMESPACE.into(),
        policy: NamespacePolicy::default(),
        created_at_ms: 0,
    };
    loop {
        let request = DirectoryRequest::Write(Command::CreateNamespace(record.clone()));
        if directory.request(request).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes this node's view of the leader and of the objects' placements to the spy.
async fn watch_node(id: u64, directory: Directory, spy: SharedSpy) {
    loop {
        let metrics = directory.metrics();
        let leader = (metrics.current_term, metrics.current_leader.map(|l| l.0));
        let mut placements = Vec::new();
        for object in [REGISTER.0, COUNTER.0] {
            let found = directory
                .read_local(|state| {
                    let key = ObjectKey {
                        namespace: state.namespace(NAMESPACE)?.stored_as(),
                        id: object.into(),
                    };
                    state.placement(&key).map(|p| (p.epoch.0, p.owner.0))
                })
                .await;
            if let Some(found) = found {
                placements.push((object, found));
            }
        }
        {
            let mut spy = spy.lock().expect("spy");
            spy.leaders.insert(id, leader);
            for (object, (epoch, owner)) in placements {
                let seen = spy.owners.entry(object).or_insert((epoch, owner));
                if epoch > seen.0 {
                    *seen = (epoch, owner);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workload: places both objects, then runs the client processes until `run_for`
/// of simulated time has passed.
async fn clients(recorder: Recorder, run_for: Duration, seed: u64) -> turmoil::Result {
    let mut client = larder_proto::v1::objects_client::ObjectsClient::new(channel(1));
    // Place both objects: the register holds 0 before the run.
    loop {
        let out = support::objects_workload::write(&mut client, 0, "setup-register").await;
        if out.kind == larder_checker::EventKind::Ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    recorder.register_starts_at_zero();
    let until = Instant::now() + run_for;
    let processes = spawn_clients(&recorder, PROCESSES, until, seed, |process| {
        let node = process % NODES + 1;
        Route {
            node: Arc::new(move || (node, addr(node))),
            connect: Arc::new(channel_to),
        }
    });
    for process in processes {
        process.await?;
    }
    Ok(())
}

/// Moves the objects to chosen nodes (the operator's move, through a chosen node) or
/// rebalances their region every 2–6 s while the workload runs, and logs each outcome.
async fn mover(seed: u64, run_for: Duration, log: Arc<Mutex<Vec<String>>>) -> turmoil::Result {
    let mut rng = Rng::new(seed ^ 0x6d6f_7665);
    let until = Instant::now() + run_for.saturating_sub(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(4)).await;
    while Instant::now() < until {
        tokio::time::sleep(rng.millis((2000, 6000))).await;
        let object = if rng.below(2) == 0 {
            REGISTER.0
        } else {
            COUNTER.0
        };
        let (to, via) = (1 + rng.below(NODES), 1 + rng.below(NODES));
        let mut client = larder_proto::v1::objects_client::ObjectsClient::new(channel(via));
        // One time in three both objects go to one node and the region is rebalanced,
        // which moves one of them away again.
        let (what, result) = if rng.below(3) == 0 {
            for object in [REGISTER.0, COUNTER.0] {
                let mut request = tonic::Request::new(larder_proto::v1::MoveRequest {
                    object: support::objects_workload::object_ref(object),
                    target: Some(larder_proto::v1::move_request::Target::ToNode(to)),
                });
                request.set_timeout(Duration::from_secs(5));
                let _ = client.r#move(request).await;
            }
            let mut request = tonic::Request::new(larder_proto::v1::RebalanceRequest {
                region: REGION.into(),
                namespace: NAMESPACE.into(),
                moves_max: 2,
            });
            request.set_timeout(Duration::from_secs(5));
            let result = client
                .rebalance(request)
                .await
                .map(|r| r.into_inner().moved.len());
            (format!("both to n{to}, rebalance"), result)
        } else {
            let mut request = tonic::Request::new(larder_proto::v1::MoveRequest {
                object: support::objects_workload::object_ref(object),
                target: Some(larder_proto::v1::move_request::Target::ToNode(to)),
            });
            request.set_timeout(Duration::from_secs(5));
            let result = client.r#move(request).await.map(|_| 1);
            (format!("move {object} to n{to}"), result)
        };
        let outcome = match result {
            Ok(moved) => format!("moved {moved}"),
            Err(status) => format!("{:?}", status.code()),
        };
        let at = turmoil::sim_elapsed().unwrap_or_default().as_secs_f64();
        log.lock()
            .expect("move log")
            .push(format!("{at:>8.3}s {what} via n{via}: {outcome}"));
    }
    Ok(())
}

fn pick_fault(rng: &mut Rng, spy: &Spy) -> Fault {
    let any = 1 + rng.below(NODES);
    let owner = {
        let object = if rng.below(2) == 0 {
            REGISTER.0
        } else {
            COUNTER.0
        };
        spy.owners.get(object).map_or(any, |(_, owner)| *owner)
    };
    // The leader named in the highest term any node has seen.
    let leader = spy
        .leaders
        .values()
        .filter_map(|(term, leader)| leader.map(|l| (*term, l)))
        .max()
        .map_or(any, |(_, leader)| leader);
    match rng.below(7) {
        0 => Fault::Crash(owner),
        1 => Fault::Crash(any),
        2 => Fault::Hold(cut_off(&[owner], NODES)),
        3 => Fault::Hold(cut_off(&[leader], NODES)),
        4 => {
            let mut nodes: Vec<u64> = (1..=NODES).collect();
            rng.shuffle(&mut nodes);
            // The owner on the minority side when it is known.
            nodes.retain(|n| *n != owner);
            Fault::Hold(cut_off(&[owner, nodes[0]], NODES))
        }
        5 => Fault::Drop(cut_off(&[owner], NODES)),
        _ => Fault::Drop(cut_off(&[any], NODES)),
    }
}

struct Run {
    faults: Vec<String>,
    history_events: usize,
    operations: String,
    /// FNV-1a of the history: equal for two runs of one seed when the run is
    /// deterministic.
    digest: u64,
}

fn run_seed(seed: u64, run_for: Duration) -> Run {
    // Every simulated host runs on this thread: openraft's elections draw from the seed.
    larder_directory::runtime::seed_thread_rng(seed);
    let mut world = World::new(seed, run_for);
    let mut log = world.run_faults(seed, run_for);
    world.final_reads(seed, &log);
    log.extend(world.moves.lock().expect("move log").drain(..));
    sort_by_time(&mut log);
    let events = world.recorder.events();
    let history = judge(seed, &events, &log);
    Run {
        faults: log,
        history_events: events.len(),
        operations: figures(&history, &events),
        digest: digest(&events),
    }
}

/// One seed's simulation: the five hosts, what the harness sees of them, and the
/// clients' history.
struct World<'a> {
    sim: turmoil::Sim<'a>,
    spy: SharedSpy,
    disks: BTreeMap<u64, MemoryDisk>,
    recorder: Recorder,
    /// The mover's log lines.
    moves: Arc<Mutex<Vec<String>>>,
}

impl World<'_> {
    /// The hosts, the workload's clients and the mover, registered in a fixed order (the
    /// order is part of what a seed replays).
    fn new(seed: u64, run_for: Duration) -> Self {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(run_for + SETTLE + Duration::from_secs(60))
            .tick_duration(Duration::from_millis(1))
            .min_message_latency(Duration::from_micros(200))
            .max_message_latency(Duration::from_millis(3))
            .rng_seed(seed)
            .build();
        let spy: SharedSpy = Arc::default();
        let disks: BTreeMap<u64, MemoryDisk> =
            (1..=NODES).map(|id| (id, MemoryDisk::new())).collect();
        for (&id, disk) in &disks {
            let (disk, spy) = (disk.clone(), spy.clone());
            sim.host(host(id), move || node(id, disk.clone(), spy.clone()));
        }
        let recorder = Recorder::with_clock(|| turmoil::sim_elapsed().unwrap_or_default());
        sim.client("clients", clients(recorder.clone(), run_for, seed));
        let moves: Arc<Mutex<Vec<String>>> = Arc::default();
        sim.client("mover", mover(seed, run_for, moves.clone()));
        World {
            sim,
            spy,
            disks,
            recorder,
            moves,
        }
    }

    /// Runs the workload to its end with the fault schedule, every fault healed at the
    /// end; returns the faults' log.
    fn run_faults(&mut self, seed: u64, run_for: Duration) -> Vec<String> {
        let mut rng = Rng::new(seed);
        let mut log = Vec::new();
        let mut active: Option<(Fault, Duration)> = None;
        let mut crashed: Vec<u64> = Vec::new();
        // Quiet for the cluster to form, then a fault every 0.5–2 s, each lasting 0.5–5 s.
        let mut next_fault = Duration::from_secs(3);
        let faults_until = run_for.saturating_sub(Duration::from_secs(5));
        loop {
            let now = self.sim.elapsed();
            match active.take() {
                Some((fault, heal_at)) if now >= heal_at => {
                    heal(&mut self.sim, &fault, &mut crashed);
                    log.push(format!(
                        "{:>8.3}s heal {}",
                        now.as_secs_f64(),
                        fault.describe()
                    ));
                    next_fault = now + rng.millis((500, 2000));
                }
                Some(still) => active = Some(still),
                None if now >= next_fault && now < faults_until => {
                    let fault = pick_fault(&mut rng, &self.spy.lock().expect("spy"));
                    inject(&mut self.sim, &fault, &self.disks, &mut rng, &mut crashed);
                    log.push(format!("{:>8.3}s {}", now.as_secs_f64(), fault.describe()));
                    let lasts = match fault {
                        Fault::Crash(_) => rng.millis((0, 5000)),
                        _ => rng.millis((500, 5000)),
                    };
                    active = Some((fault, now + lasts));
                }
                None => {}
            }
            match self.sim.step() {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => panic!(
                    "simulation failed (SIM_SEED={seed}): {err}\nfaults:\n{}",
                    log.join("\n")
                ),
            }
        }
        if let Some((fault, _)) = active.take() {
            heal(&mut self.sim, &fault, &mut crashed);
            log.push(format!("heal {}", fault.describe()));
        }
        log
    }

    /// The healed cluster answers the final reads through one node (chosen by the seed).
    fn final_reads(&mut self, seed: u64, log: &[String]) {
        let final_node = 1 + seed % NODES;
        self.sim.client("final", {
            let recorder = self.recorder.clone();
            async move {
                final_reads(&recorder, channel(final_node), final_node, SETTLE)
                    .await
                    .map_err(|err| err.into())
            }
        });
        if let Err(err) = self.sim.run() {
            panic!(
                "final reads (SIM_SEED={seed}): {err}\nfaults:\n{}",
                log.join("\n")
            );
        }
    }
}

/// Orders log lines by the time they start with (lines without one stay in place).
fn sort_by_time(log: &mut [String]) {
    log.sort_by(|a, b| {
        let at = |line: &str| {
            line.split('s')
                .next()
                .and_then(|t| t.trim().parse::<f64>().ok())
        };
        at(a)
            .partial_cmp(&at(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

/// Runs the checkers on the history (written to a file for a failing seed); panics
/// with the seed and the faults unless they pass and saw enough to judge.
fn judge(seed: u64, events: &[larder_checker::Event], log: &[String]) -> History {
    let history = History::from_events(events.to_vec()).expect("well-formed history");
    let report = check_all(&history, &CheckInputs::default()).expect("checkers ran");
    let text = serde_json::to_string_pretty(&report).expect("report");
    let path = std::env::temp_dir().join(format!("larder-sim-{seed}.jsonl"));
    larder_checker::write_history_file(&path, events).expect("write history");
    if report.exit_code() != 0 {
        panic!(
            "checkers did not pass (SIM_SEED={seed}, history in {}):\n{text}\nfaults:\n{}",
            path.display(),
            log.join("\n")
        );
    }
    assert_checkers_are_not_blind(events, &history);
    history
}

/// One seed, in its own process (see [`run_in_child`]).
#[test]
#[ignore = "run by the other tests of this file, one process per seed"]
fn one_seed() {
    let Some((seed, run_for)) = sim_net::child_seed(20) else {
        return;
    };
    let started = std::time::Instant::now();
    let run = run_seed(seed, run_for);
    let summary = format!("{} events; {}", run.history_events, run.operations);
    sim_net::report_pass(seed, started, &summary, &run.faults, run.digest);
}

#[test]
fn ownership_stays_safe_across_seeds_of_crashes_and_partitions() {
    let run_for = Duration::from_secs(env_number("SIM_SECS").unwrap_or(20));
    for seed in sim_net::seeds(4) {
        let started = std::time::Instant::now();
        let outcome = run_in_child("one_seed", seed, run_for);
        let summary = outcome.summary(seed);
        let faults: Vec<&str> = outcome
            .output
            .lines()
            .skip_while(|line| *line != "faults:")
            .take_while(|line| !line.starts_with(RESULT_PREFIX))
            .collect();
        println!(
            "{summary} [{:.1} s, digest {}] (SIM_SEED={seed} replays it)\n{}",
            started.elapsed().as_secs_f64(),
            outcome.digest,
            faults.join("\n")
        );
    }
}

/// A seed is a reproduction: the same seed gives the same history, event for event.
#[test]
fn a_seed_replays_exactly() {
    sim_net::assert_seed_replays("one_seed", 7, Duration::from_secs(10));
}
