//! Replays the fuzz corpora (`fuzz/corpus/<target>/`, grown by `cargo fuzz`; see
//! fuzz/README.md) through the fuzz target bodies, plus a fixed pseudo-random sweep and
//! mutations of valid records, so every CI run exercises them on stable.

use std::path::PathBuf;

use larder_tests::fuzz::TARGETS;

/// xorshift64*: deterministic, so a failure here reproduces from the printed case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn the_saved_corpora_replay_cleanly() {
    let mut replayed = 0;
    for (name, body) in TARGETS {
        let dir = corpus_dir(name);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("corpus {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name} failed on {}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no corpus files found");
}

#[test]
fn a_pseudo_random_sweep_passes_every_target() {
    for (name, body) in TARGETS {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..3000 {
            let len = (rng.next() % 512) as usize;
            let data = rng.bytes(len);
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(
                outcome.is_ok(),
                "{name} failed on sweep case {case}: {data:?}"
            );
        }
    }
}

#[test]
fn mutated_valid_records_never_panic_the_decoders() {
    use larder_objects::op::{Event, EventKind, Reply};
    use larder_store::codec;
    let seeds: Vec<(u8, Vec<u8>)> = vec![
        (
            5,
            codec::encode(&Event {
                seq: 3,
                at_ms: 99,
                kind: EventKind::AlarmFired {
                    name: "tick".into(),
                    scheduled_ms: 90,
                    payload: b"p".to_vec(),
                },
            })
            .expect("encode"),
        ),
        (
            7,
            codec::encode(&("r1".to_string(), Reply::Published { seq: 4, version: 9 }))
                .expect("encode"),
        ),
        (
            11,
            codec::encode(&larder_objects::ObjectState::default()).expect("encode"),
        ),
    ];
    let mut rng = Rng(42);
    for (tag, record) in seeds {
        for _ in 0..2000 {
            let mut data = vec![tag];
            data.extend_from_slice(&record);
            for _ in 0..=(rng.next() % 3) {
                let at = 1 + (rng.next() as usize) % (data.len() - 1).max(1);
                if at < data.len() {
                    data[at] = rng.next() as u8;
                }
            }
            if rng.next().is_multiple_of(4) {
                data.truncate(1 + (rng.next() as usize) % data.len());
            }
            let outcome = std::panic::catch_unwind(|| larder_tests::fuzz::stored_records(&data));
            assert!(outcome.is_ok(), "stored_records failed on {data:?}");
        }
    }
}
