//! Recovery at open: finishing the record at sled's position from its intent, then
//! replaying the log's records from there to the first torn one (see `wal`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{
    MAGIC, Op, POSITION_ATOMIC, POSITION_INTENT, POSITION_KEY, RECORD_HEADER_LEN, Record,
    SEGMENT_HEADER_LEN, apply_changes, set_position,
};
use crate::StoreError;

/// Applies again the record at sled's position when it was kept as an intent (a crash
/// may have cut it short); returns the position (0: none yet).
pub(super) fn finish_interrupted(db: &sled::Db, positions: &sled::Tree) -> Result<u64, StoreError> {
    let Some(raw) = positions.get(POSITION_KEY)? else {
        return Ok(0);
    };
    let corrupt = |what: &str| StoreError::Corrupted(format!("sled's log position {what}"));
    if raw.len() < 9 {
        return Err(corrupt(&format!("has {} bytes", raw.len())));
    }
    let number = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
    match raw[8] {
        POSITION_ATOMIC => {}
        POSITION_INTENT => {
            let record: Record<'_> = postcard::from_bytes(&raw[9..])
                .map_err(|err| corrupt(&format!("holds an intent that does not decode: {err}")))?;
            if record.number != number {
                return Err(corrupt(&format!(
                    "is {number} but its intent is record {}",
                    record.number
                )));
            }
            apply(db, &record, false)?;
        }
        kind => return Err(corrupt(&format!("has kind {kind}"))),
    }
    Ok(number)
}

pub(super) struct Replayed {
    /// Number of the last intact record (0: none).
    pub(super) last: u64,
    pub(super) applied: u64,
    pub(super) torn_bytes: u64,
}

/// Applies the records from sled's `position` on, of every segment in order.
pub(super) fn replay(
    db: &sled::Db,
    positions: &sled::Tree,
    position: u64,
    segments: &[(u64, PathBuf)],
) -> Result<Replayed, StoreError> {
    let mut replayed = Replayed {
        last: 0,
        applied: 0,
        torn_bytes: 0,
    };
    for (index, (_, path)) in segments.iter().enumerate() {
        let file = File::open(path).map_err(StoreError::Io)?;
        let size = file.metadata().map_err(StoreError::Io)?.len();
        let mut reader = BufReader::new(file);
        let mut offset = read_segment_header(&mut reader, path)?;
        let corrupt = |offset: u64, what: &str| {
            StoreError::Corrupted(format!(
                "write-ahead log {} has {what} at byte {offset}, and later segments follow: \
                 synced records are damaged",
                path.display()
            ))
        };
        let mut payload = Vec::new();
        loop {
            match read_record(&mut reader, size - offset, &mut payload)? {
                Framed::End => break,
                Framed::Torn(what) => {
                    if index + 1 < segments.len() {
                        return Err(corrupt(offset, what));
                    }
                    replayed.torn_bytes = size - offset;
                    warn!(path = %path.display(), offset, bytes = size - offset, reason = what,
                        "write-ahead log ends in a torn record: dropped (it was never acknowledged)");
                    break;
                }
                Framed::Record(len) => {
                    let record: Record<'_> = postcard::from_bytes(&payload).map_err(|err| {
                        StoreError::Corrupted(format!(
                            "write-ahead log {} record at byte {offset} passes its checksum \
                             but does not decode: {err}",
                            path.display()
                        ))
                    })?;
                    let expected = if replayed.last == 0 {
                        // The first record: sled must hold every one before it.
                        (record.number <= position + 1).then_some(record.number)
                    } else {
                        Some(replayed.last + 1)
                    };
                    if expected != Some(record.number) {
                        return Err(StoreError::Corrupted(format!(
                            "write-ahead log {} has record {} at byte {offset} after record \
                             {} (sled is at record {position}): records are missing",
                            path.display(),
                            record.number,
                            replayed.last,
                        )));
                    }
                    replayed.last = record.number;
                    if record.number >= position {
                        let atomic = set_position(positions, record.number, &payload)?;
                        apply(db, &record, atomic)?;
                        replayed.applied += 1;
                    }
                    offset += (RECORD_HEADER_LEN + len) as u64;
                }
            }
        }
    }
    Ok(replayed)
}

pub(super) fn read_segment_header(reader: &mut impl Read, path: &Path) -> Result<u64, StoreError> {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    match reader.read_exact(&mut header) {
        // A segment whose header never reached the disk holds no record.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(err) => return Err(StoreError::Io(err)),
        Ok(()) if &header[..MAGIC.len()] != MAGIC => {
            return Err(StoreError::Corrupted(format!(
                "{} is not a write-ahead log segment of this format",
                path.display()
            )));
        }
        Ok(()) => {}
    }
    Ok(SEGMENT_HEADER_LEN as u64)
}

pub(super) enum Framed {
    End,
    Torn(&'static str),
    /// A record whose payload (this long) is in the buffer.
    Record(usize),
}

pub(super) fn read_record(
    reader: &mut impl Read,
    remaining: u64,
    payload: &mut Vec<u8>,
) -> Result<Framed, StoreError> {
    if remaining == 0 {
        return Ok(Framed::End);
    }
    if remaining < RECORD_HEADER_LEN as u64 {
        return Ok(Framed::Torn("a short record header"));
    }
    let mut header = [0u8; RECORD_HEADER_LEN];
    reader.read_exact(&mut header).map_err(StoreError::Io)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len == 0 {
        // The zero-filled space segments grow by: no record is empty (each names its
        // number and tree).
        return Ok(Framed::End);
    }
    if len as u64 > remaining - RECORD_HEADER_LEN as u64 {
        return Ok(Framed::Torn("a record longer than the file"));
    }
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(StoreError::Io)?;
    if crc32fast::hash(payload) != crc {
        return Ok(Framed::Torn("a record failing its checksum"));
    }
    Ok(Framed::Record(len))
}

/// Applies `record` to sled: as one batch when `atomic`, else change by change.
fn apply(db: &sled::Db, record: &Record<'_>, atomic: bool) -> Result<(), StoreError> {
    let tree = db.open_tree(record.tree)?;
    match &record.op {
        Op::Batch(changes) => apply_changes(
            &tree,
            changes.iter().map(|change| (change.key, change.value)),
            atomic,
        ),
        Op::Clear => Ok(tree.clear()?),
    }
}
