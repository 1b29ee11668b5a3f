//! Repeated warnings, rate-limited. A dead peer makes openraft warn about every failed
//! heartbeat (about ten a second per peer); a full disk makes every refused write
//! warn. The log keeps the first few of each warning statement in a window and counts
//! the rest; a summary line per statement reports the count once a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Events of one statement logged per window before the rest are counted instead.
const BURST: u32 = 5;
const WINDOW: Duration = Duration::from_secs(10);
/// How often the counts of suppressed warnings are logged.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// The target of the summary lines, which are never limited themselves.
const SUMMARY_TARGET: &str = "larder::log_limit";

#[derive(Default)]
struct Slot {
    window_started: Option<Instant>,
    in_window: u32,
    suppressed: u64,
    /// `target file:line`, for the summary.
    statement: String,
}

/// The per-statement limit on warnings and errors; cheap to clone.
#[derive(Clone, Default)]
pub struct RepeatLimit {
    slots: Arc<Mutex<HashMap<Identifier, Slot>>>,
}

impl RepeatLimit {
    /// Whether an event of `meta` goes to the log now (counting it when not).
    fn admit(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(meta.callsite()).or_insert_with(|| Slot {
            statement: format!(
                "{} {}:{}",
                meta.target(),
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0)
            ),
            ..Slot::default()
        });
        if slot
            .window_started
            .is_none_or(|at| now.duration_since(at) >= WINDOW)
        {
            slot.window_started = Some(now);
            slot.in_window = 0;
        }
        if slot.in_window < BURST {
            slot.in_window += 1;
            true
        } else {
            slot.suppressed += 1;
            false
        }
    }

    /// The counts suppressed since the last call, by statement.
    fn take_suppressed(&self) -> Vec<(String, u64)> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .values_mut()
            .filter(|slot| slot.suppressed > 0)
            .map(|slot| (slot.statement.clone(), std::mem::take(&mut slot.suppressed)))
            .collect()
    }

    /// Logs, once a minute, how many of each warning were left out.
    pub fn spawn_reports(&self) {
        let limit = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(REPORT_EVERY);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                for (statement, suppressed) in limit.take_suppressed() {
                    tracing::warn!(target: SUMMARY_TARGET, statement = %statement, suppressed, "repeated warnings left out of the log");
                }
            }
        });
    }
}

/// Only warnings and errors are limited.
fn limited(meta: &Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= Level::WARN && meta.target() != SUMMARY_TARGET
}

impl<S> Filter<S> for RepeatLimit {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !limited(meta) || self.admit(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if limited(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach it.
    struct Counted(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for Counted {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_statement_is_logged_a_few_times_per_window_and_the_rest_counted() {
        let limit = RepeatLimit::default();
        let logged = Arc::new(AtomicUsize::new(0));
        let subscriber =
            tracing_subscriber::registry().with(Counted(logged.clone()).with_filter(limit.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for peer in 0..50 {
                tracing::warn!(peer, "failed to send a heartbeat");
            }
            for _ in 0..3 {
                tracing::info!("not limited");
            }
            tracing::warn!("another statement");
        });
        // Within one window: the burst of the first statement, every info, the other.
        assert_eq!(logged.load(Ordering::Relaxed), BURST as usize + 3 + 1);
        let suppressed = limit.take_suppressed();
        assert_eq!(suppressed.len(), 1, "{suppressed:?}");
        assert_eq!(suppressed[0].1, 50 - u64::from(BURST));
        assert!(suppressed[0].0.contains("log_limit.rs"), "{suppressed:?}");
        assert!(limit.take_suppressed().is_empty(), "counted once");
    }
}
