//! The network and crash faults of the simulation tiers (`sim.rs`, `sim_kv.rs`): what
//! each does to turmoil's hosts and disks, and what healing it takes. Hosts are named
//! `n<id>` ([`host`]).

use std::collections::BTreeMap;

use larder_store::MemoryDisk;

use super::rng::Rng;

/// The simulated host of node `id`.
pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// One fault of a schedule.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The host dies; its disk keeps what was flushed and a random prefix of the rest.
    Crash(u64),
    /// Links held both ways: messages wait and arrive late, after the heal.
    Hold(Vec<(u64, u64)>),
    /// Links that drop every message.
    Drop(Vec<(u64, u64)>),
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::Crash(id) => format!("crash n{id}"),
            Fault::Hold(links) => format!("hold {links:?}"),
            Fault::Drop(links) => format!("drop {links:?}"),
        }
    }
}

/// Links between `side` and every other of nodes `1..=nodes`.
pub fn cut_off(side: &[u64], nodes: u64) -> Vec<(u64, u64)> {
    let mut links = Vec::new();
    for a in side {
        for b in 1..=nodes {
            if !side.contains(&b) {
                links.push((*a, b));
            }
        }
    }
    links
}

/// Starts `fault`; a crashed host is remembered in `crashed` until [`heal`] restarts it.
pub fn inject(
    sim: &mut turmoil::Sim,
    fault: &Fault,
    disks: &BTreeMap<u64, MemoryDisk>,
    rng: &mut Rng,
    crashed: &mut Vec<u64>,
) {
    match fault {
        Fault::Crash(id) => {
            sim.crash(host(*id));
            let disk = &disks[id];
            let pending = disk.pending_writes() as u64;
            disk.crash(rng.below(pending + 1) as usize);
            crashed.push(*id);
        }
        Fault::Hold(links) => {
            for (a, b) in links {
                sim.hold(host(*a), host(*b));
            }
        }
        Fault::Drop(links) => {
            for (a, b) in links {
                sim.partition(host(*a), host(*b));
            }
        }
    }
}

/// Ends `fault`: crashed hosts restart, held links deliver, dropped links carry again.
pub fn heal(sim: &mut turmoil::Sim, fault: &Fault, crashed: &mut Vec<u64>) {
    match fault {
        Fault::Crash(_) => {
            for id in crashed.drain(..) {
                sim.bounce(host(id));
            }
        }
        Fault::Hold(links) => {
            for (a, b) in links {
                sim.release(host(*a), host(*b));
            }
        }
        Fault::Drop(links) => {
            for (a, b) in links {
                sim.repair(host(*a), host(*b));
            }
        }
    }
}
