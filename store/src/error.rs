use std::path::PathBuf;

/// Errors of the storage seam.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store at {path} has on-disk format version {found}; this build reads version {supported}"
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("the store is corrupted: {0}")]
    Corrupted(String),
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the storage flush task stopped")]
    FlushTaskGone,
    /// The filesystem is nearly full: writes wait until space is freed (reads go on).
    #[error(
        "the disk is nearly full: {free_bytes} bytes free, writes need {min_free_bytes} (limits.disk_free_min_bytes)"
    )]
    DiskFull {
        free_bytes: u64,
        min_free_bytes: u64,
    },
    /// An earlier flush failed; this store acknowledges nothing more (fail-stop).
    #[error("storage failed earlier ({0}); the node is stopping")]
    Failed(String),
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(io) => StoreError::Io(io),
            sled::Error::Corruption { .. } => StoreError::Corrupted(err.to_string()),
            other => StoreError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

impl From<StoreError> for std::io::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        }
    }
}
