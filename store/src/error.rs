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
