//! openraft's own storage test suite on the store, on the real file system.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tidelog_raft::LogStore;
use tidelog_raft::kv::{MemStateMachine, TypeConfig};

/// A new store in a directory of its own for each of the suite's tests; the directory lives
/// as long as the test.
struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, MemStateMachine, tempfile::TempDir> for OnDisk {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, MemStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = LogStore::open(dir.path().join("raft-log")).expect("open the store");
        Ok((dir, store, MemStateMachine::new()))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_real_file_system() {
    if let Err(e) = Suite::test_all(OnDisk) {
        panic!("openraft's storage suite failed: {e}");
    }
}
