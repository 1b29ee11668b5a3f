//! The closed loop the throughput benches share: each worker has one request in flight
//! at a time, until the run's duration is over or its request budget is spent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::report::{histogram, report};

/// One worker's requests.
pub(super) trait Worker: Send + 'static {
    /// The next request. What runs before the returned future is awaited (choosing a
    /// key, building a value) is not timed; the future is, and says whether the
    /// request succeeded.
    fn request(&mut self) -> impl Future<Output = bool> + Send;
}

/// What a run measured: latencies of the requests that succeeded, and the failures.
pub(super) struct Measured {
    pub latencies: Histogram<u64>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Measured {
    /// Prints the figures, with the run's parameters under `params` in JSON.
    pub(super) fn report(&self, json_out: bool, title: &str, params: serde_json::Value) {
        let h = &self.latencies;
        report(
            json_out,
            title,
            h.len(),
            self.errors,
            self.elapsed,
            h,
            params,
        );
    }
}

/// Runs every worker concurrently for `duration`, `requests_max` requests at the most
/// between them.
pub(super) async fn run<W: Worker>(
    workers: Vec<W>,
    duration: Duration,
    requests_max: u64,
) -> anyhow::Result<Measured> {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let (done, errors) = (done.clone(), errors.clone());
            tokio::spawn(async move {
                let mut h =
                    histogram().expect("the bounds are constants that hdrhistogram accepts");
                while Instant::now() < deadline
                    && done.fetch_add(1, Ordering::Relaxed) < requests_max
                {
                    let request = worker.request();
                    let t = Instant::now();
                    if request.await {
                        let _ = h.record(t.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
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
    Ok(Measured {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}
