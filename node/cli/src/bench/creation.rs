//! `larder bench object --op create`: creates `--objects` new objects (each by its first
//! write, which places it) with `--concurrency` in flight, and reports the creation rate
//! per tenth of them, so that a cost growing with the objects already placed shows as a
//! falling rate.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_client::Client;
use serde_json::json;

use super::objects::{ObjectBenchArgs, name};
use super::report::{histogram, report};

/// The run's shared progress: the next object to create, creations done, and when each
/// tenth of them was done.
struct Progress {
    next: AtomicUsize,
    created: AtomicUsize,
    errors: AtomicU64,
    tenth: usize,
    tenths_done_at: Mutex<Vec<Duration>>,
    started: Instant,
}

impl Progress {
    /// Counts one creation; at the end of a tenth, notes the time.
    fn created_one(&self) {
        let created = self.created.fetch_add(1, Ordering::Relaxed) + 1;
        if created.is_multiple_of(self.tenth) {
            self.tenths_done_at
                .lock()
                .expect("tenths lock is never poisoned: no panics under it")
                .push(self.started.elapsed());
        }
    }
}

pub(super) async fn run(
    clients: &[Client],
    json_out: bool,
    args: &ObjectBenchArgs,
    run: u64,
) -> anyhow::Result<()> {
    let total = args.objects.min(usize::try_from(args.requests_max)?);
    let progress = Arc::new(Progress {
        next: AtomicUsize::new(0),
        created: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
        tenth: (total / 10).max(1),
        tenths_done_at: Mutex::new(Vec::with_capacity(10)),
        started: Instant::now(),
    });
    let deadline = progress.started + args.duration;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let objects = clients[w % clients.len()].objects(&args.namespace);
            let progress = progress.clone();
            tokio::spawn(async move {
                let mut h =
                    histogram().expect("the bounds are constants that hdrhistogram accepts");
                while Instant::now() < deadline {
                    let i = progress.next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let object = objects.by_name(&name(run, i));
                    let t = Instant::now();
                    // The first write places the object.
                    if object.add("n", 1).await.is_ok() {
                        let _ = h.record(t.elapsed().as_micros() as u64);
                        progress.created_one();
                    } else {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                h
            })
        })
        .collect();
    let mut latencies = histogram()?;
    for task in tasks {
        let _ = latencies.add(&task.await?);
    }
    let elapsed = progress.started.elapsed();
    let mut done_at = progress
        .tenths_done_at
        .lock()
        .expect("tenths lock is never poisoned: no panics under it")
        .clone();
    // Workers note their tenth as they finish it; two can finish nearly together.
    done_at.sort();
    let per_tenth = rates_per_tenth(&done_at, progress.tenth);
    if !json_out {
        let rates: Vec<String> = per_tenth.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "creations per second, by tenth of the objects: {}",
            rates.join(" ")
        );
    }
    let params = json!({
        "objects": total, "concurrency": args.concurrency, "channels": args.channels,
        "created_per_sec_by_tenth": per_tenth,
    });
    report(
        json_out,
        "object create (first write, placed by the directory)",
        latencies.len(),
        progress.errors.load(Ordering::Relaxed),
        elapsed,
        &latencies,
        params,
    );
    Ok(())
}

/// Creations per second in each tenth, from the times the tenths were done.
fn rates_per_tenth(done_at: &[Duration], tenth: usize) -> Vec<f64> {
    let mut previous = Duration::ZERO;
    done_at
        .iter()
        .map(|at| {
            let took = at.saturating_sub(previous).as_secs_f64().max(1e-6);
            previous = *at;
            tenth as f64 / took
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenth_is_timed_from_the_end_of_the_one_before() {
        let done = [1, 2, 4].map(Duration::from_secs);
        assert_eq!(rates_per_tenth(&done, 100), vec![100.0, 100.0, 50.0]);
    }
}
