//! openraft's own storage conformance suite, run against the directory's sled storage.

use larder_directory::raft_types::DirectoryRaftConfig;
use larder_directory::{SledLogStore, SledStateMachine};
use larder_store::Store;
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<DirectoryRaftConfig, SledLogStore, SledStateMachine, tempfile::TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (tempfile::TempDir, SledLogStore, SledStateMachine),
        StorageError<DirectoryRaftConfig>,
    > {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let log = SledLogStore::open(store.clone()).expect("log store");
        let (sm, _reader) = SledStateMachine::open(store).expect("state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_storage_passes_openraft_suite() {
    Suite::test_all(SledBuilder).await.expect("storage suite");
}
