//! Times the linearizability check on simulated histories:
//! `cargo run --release -p larder-checker --example wgl_bench -- [ops] [processes] [seeds]`.

use std::time::Instant;

use larder_checker::simulate::{SimConfig, SimObject, simulate_seeded};
use larder_checker::{History, LinearizabilityLimits, check_linearizability};

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let ops = args.first().copied().unwrap_or(1000) as usize;
    let processes = args.get(1).copied().unwrap_or(5);
    let seeds = args.get(2).copied().unwrap_or(10);
    let broken = std::env::var("BROKEN").is_ok();
    for object in [SimObject::Register, SimObject::Counter] {
        let mut times_ms = Vec::new();
        for seed in 0..seeds {
            let config = SimConfig {
                object,
                processes,
                ops,
                ..SimConfig::default()
            };
            let mut events = simulate_seeded(&config, seed);
            if broken {
                break_late_read(&mut events);
            }
            let history = History::from_events(events)?;
            let started = Instant::now();
            let report = check_linearizability(&history, &LinearizabilityLimits::default())?;
            times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            println!(
                "{object:?} seed {seed}: {:?}, {} ops searched, {} steps, {} states, {:.2} ms",
                report.verdict,
                report.operations,
                report.stats.steps,
                report.stats.states,
                times_ms.last().copied().unwrap_or_default()
            );
        }
        times_ms.sort_by(f64::total_cmp);
        println!(
            "{object:?}: {ops} ops, {processes} processes: median {:.2} ms, max {:.2} ms",
            times_ms[times_ms.len() / 2],
            times_ms[times_ms.len() - 1]
        );
    }
    Ok(())
}

/// Makes the last ok read that returned a value return a value nobody wrote.
fn break_late_read(events: &mut [larder_checker::Event]) {
    use larder_checker::{EventKind, OpName, Value};
    if let Some(read) = events
        .iter_mut()
        .rev()
        .find(|e| e.kind == EventKind::Ok && e.op == OpName::Read && e.value.is_some())
    {
        read.value = Some(Value::Int(-1));
    }
}
