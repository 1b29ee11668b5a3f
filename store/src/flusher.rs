//! Shared flushes: concurrent callers of [`crate::Store::flush`] ride on one flush
//! instead of queueing one each (group commit at the storage seam).
//!
//! A caller needs a flush that *starts* after its call (that one covers every write it
//! made before calling). Flushes run one at a time, numbered; a caller notes the number
//! the next flush to start will get, and either starts it or waits until a flush with
//! that number or a later one has finished.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::StoreError;

#[derive(Default)]
struct State {
    /// Number of the last flush started.
    started: u64,
    running: bool,
    /// Number of the last flush that failed (0: none).
    failed: u64,
    failure: Option<String>,
}

#[derive(Clone)]
pub(crate) struct Flusher {
    state: Arc<Mutex<State>>,
    /// Number of the last flush finished.
    finished: watch::Sender<u64>,
}

impl Flusher {
    pub fn new() -> Flusher {
        Flusher {
            state: Arc::new(Mutex::new(State::default())),
            finished: watch::channel(0).0,
        }
    }

    /// Runs `flush` (blocking) on the blocking pool, shared with concurrent callers.
    pub async fn flush<F>(&self, flush: F) -> Result<(), StoreError>
    where
        F: Fn() -> Result<(), StoreError> + Clone + Send + 'static,
    {
        let mut finished = self.finished.subscribe();
        let target = self.lock().started + 1;
        loop {
            let start = {
                let mut state = self.lock();
                if *finished.borrow_and_update() >= target {
                    return match (&state.failure, state.failed >= target) {
                        (Some(reason), true) => {
                            Err(StoreError::Io(std::io::Error::other(reason.clone())))
                        }
                        _ => Ok(()),
                    };
                }
                if state.running {
                    None
                } else {
                    state.running = true;
                    state.started += 1;
                    Some(state.started)
                }
            };
            match start {
                Some(number) => {
                    // The flush and its hand-over run on the blocking pool, which runs
                    // a task to its end even when nobody awaits it: if this caller is
                    // dropped meanwhile (a gRPC handler whose client went away), the
                    // flush still finishes and releases the callers waiting on it.
                    let (this, task) = (self.clone(), flush.clone());
                    let result = tokio::task::spawn_blocking(move || this.run(number, task))
                        .await
                        .map_err(|_| StoreError::FlushTaskGone)
                        .and_then(|r| r);
                    if number >= target {
                        return result;
                    }
                }
                None => {
                    if finished.changed().await.is_err() {
                        return Err(StoreError::FlushTaskGone);
                    }
                }
            }
        }
    }

    /// Runs flush `number` (blocking), records its outcome and announces it.
    fn run<F>(&self, number: u64, flush: F) -> Result<(), StoreError>
    where
        F: Fn() -> Result<(), StoreError>,
    {
        // A panicking flush must still hand over, or every later caller would wait on
        // a flush that never ends.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(flush))
            .unwrap_or(Err(StoreError::FlushTaskGone));
        {
            let mut state = self.lock();
            state.running = false;
            if let Err(err) = &result {
                state.failed = number;
                state.failure = Some(err.to_string());
            }
        }
        self.finished.send_replace(number);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("flusher state is never poisoned: no panics under its lock")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_flushes() {
        let flusher = Flusher::new();
        let runs = Arc::new(AtomicU64::new(0));
        let mut callers = Vec::new();
        for _ in 0..64 {
            let (flusher, runs) = (flusher.clone(), runs.clone());
            callers.push(tokio::spawn(async move {
                flusher
                    .flush(move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(())
                    })
                    .await
            }));
        }
        for caller in callers {
            caller.await.expect("caller").expect("flushed");
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!((1..=8).contains(&runs), "64 callers needed {runs} flushes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_dropped_while_its_flush_runs_does_not_stall_later_callers() {
        // A gRPC handler is dropped when its client goes away (a peer killed mid-call):
        // if it was the caller running the shared flush, the flush must still finish
        // and hand over to the next caller.
        let flusher = Flusher::new();
        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            flusher.flush(|| {
                std::thread::sleep(Duration::from_millis(200));
                Ok(())
            }),
        )
        .await;
        assert!(dropped.is_err(), "the first caller gave up mid-flush");
        tokio::time::timeout(Duration::from_secs(5), flusher.flush(|| Ok(())))
            .await
            .expect("a later flush must not wait forever for the abandoned one")
            .expect("flushed");
    }

    #[tokio::test]
    async fn a_failed_flush_is_reported_to_the_callers_it_covered() {
        let flusher = Flusher::new();
        let err = flusher
            .flush(|| Err(StoreError::Io(std::io::Error::other("disk gone"))))
            .await
            .expect_err("failure reported");
        assert!(err.to_string().contains("disk gone"), "{err}");
        // A later flush that succeeds clears the way for later callers.
        flusher.flush(|| Ok(())).await.expect("later flush");
    }
}
