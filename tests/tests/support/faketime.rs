//! A skewed wall clock for one test node, through libfaketime (Debian package
//! `libfaketime`; `scripts/test` installs it).
//!
//! The node starts with libfaketime preloaded and reads its offset from a file in its data
//! directory on every clock call, so [`FakeClock::set_offset_ms`] makes its wall clock jump
//! while it runs. Only the wall clock moves: `FAKETIME_DONT_FAKE_MONOTONIC=1` leaves the
//! monotonic clock alone, which tokio's timers, Raft's timeouts and leases run on (a faked
//! monotonic clock hangs tokio). The file goes away with the data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::TestNode;

/// Where Debian's `libfaketime` package puts the preload library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The offset control of one node's wall clock.
pub struct FakeClock {
    file: PathBuf,
    offset_ms: i64,
}

impl FakeClock {
    /// Makes `node` run with libfaketime from its next start, `offset_ms` away from the
    /// real wall clock.
    pub fn install(node: &mut TestNode, offset_ms: i64) -> anyhow::Result<FakeClock> {
        if !Path::new(LIBFAKETIME).exists() {
            bail!(
                "{LIBFAKETIME} is missing: `apt-get install libfaketime` (scripts/test installs it)"
            );
        }
        let clock = FakeClock {
            file: node.data_dir.join("faketime-offset"),
            offset_ms: 0,
        };
        clock.write(offset_ms)?;
        node.set_env("LD_PRELOAD", LIBFAKETIME);
        node.set_env("FAKETIME_TIMESTAMP_FILE", &clock.file.display().to_string());
        // Re-read the file on every call, so that a jump applies at once.
        node.set_env("FAKETIME_NO_CACHE", "1");
        node.set_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        Ok(FakeClock { offset_ms, ..clock })
    }

    /// Moves the node's wall clock to `offset_ms` from the real one (a jump forward or
    /// back, effective at its next clock read).
    pub fn set_offset_ms(&mut self, offset_ms: i64) -> anyhow::Result<()> {
        self.write(offset_ms)?;
        self.offset_ms = offset_ms;
        Ok(())
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    fn write(&self, offset_ms: i64) -> anyhow::Result<()> {
        // libfaketime's relative form: "+2.5" or "-0.75" seconds. Written to a temporary
        // file and renamed, so that a clock read never sees a half-written offset.
        let sign = if offset_ms < 0 { '-' } else { '+' };
        let ms = offset_ms.unsigned_abs();
        let text = format!("{sign}{}.{:03}\n", ms / 1000, ms % 1000);
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, text).context("write the faketime offset")?;
        std::fs::rename(&tmp, &self.file).context("install the faketime offset")
    }
}
