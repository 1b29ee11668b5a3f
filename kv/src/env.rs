//! What a KV replica takes from the node it runs in besides its store and settings: the
//! wall clock and the source of its random draws.

use std::sync::Mutex;

use larder_base::{SharedClock, SystemClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The wall clock the KV stamps versions, expires entries and times anti-entropy by, and
/// the seed of its random draws (anti-entropy's partner and jitter). A node passes
/// [`KvEnv::system`]; the simulation tier passes simulated time and the run's seed, so
/// that a seed replays the same run.
#[derive(Debug, Clone)]
pub struct KvEnv {
    pub clock: SharedClock,
    /// `None`: seeded from the operating system.
    pub rng_seed: Option<u64>,
}

impl KvEnv {
    /// The operating system's clock and an OS-seeded generator.
    pub fn system() -> KvEnv {
        KvEnv {
            clock: SystemClock::shared(),
            rng_seed: None,
        }
    }
}

/// The KV's random draws, from one generator so that a seed decides all of them.
#[derive(Debug)]
pub(crate) struct Draws {
    rng: Mutex<StdRng>,
}

impl Draws {
    pub fn new(seed: Option<u64>) -> Draws {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Draws {
            rng: Mutex::new(rng),
        }
    }

    /// Uniform in `0..=max`.
    pub fn up_to(&self, max: u64) -> u64 {
        self.lock().random_range(0..=max)
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&self, n: usize) -> usize {
        assert!(n > 0, "a draw below 0 has no value");
        self.lock().random_range(0..n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng
            .lock()
            .expect("rng lock is never poisoned: no panics under it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_sequence_again() {
        let draw = |seed| {
            let draws = Draws::new(Some(seed));
            (0..16).map(|_| draws.up_to(1_000_000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let draws = Draws::new(None);
        assert!((0..100).all(|_| draws.below(3) < 3));
    }
}
