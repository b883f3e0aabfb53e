//! What the store refuses, with typed errors: a log that buffers appends, a metadata slot it
//! did not write, and an append that would leave a hole.

use openraft::storage::{RaftLogReader, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tidelog::{Durability, Log};
use tidelog_raft::kv::TypeConfig;
use tidelog_raft::{Error, LogStore};

type Store = LogStore<TypeConfig>;

fn blank(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Blank,
    }
}

#[test]
fn a_log_with_a_write_buffer_or_foreign_metadata_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let buffered = Log::builder(dir.path().join("buffered"))
        .write_buffer_bytes(4096)
        .open()
        .expect("open");
    assert!(matches!(
        Store::from_log(buffered),
        Err(Error::WriteBuffer { bytes: 4096 })
    ));
    let foreign = Log::builder(dir.path().join("foreign"))
        .write_buffer_bytes(0)
        .open()
        .expect("open");
    foreign.set_metadata(b"not the store's").expect("metadata");
    assert!(matches!(
        Store::from_log(foreign),
        Err(Error::BadMetadata { .. })
    ));
}

#[test]
fn a_hole_is_refused_and_a_record_that_is_no_entry_is_named() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let mut store = Store::open(dir.path().join("log")).expect("open");
        store
            .blocking_append([blank(0), blank(1)])
            .await
            .expect("append");
        let hole = store.blocking_append([blank(5)]).await.expect_err("a hole");
        assert!(hole.to_string().contains("index 5"), "{hole}");
        // A record written behind the store's back does not decode as an entry.
        store
            .log()
            .append(b"not an entry", Durability::Synced)
            .expect("append");
        let bad = store
            .try_get_log_entries(0..10)
            .await
            .expect_err("not an entry");
        assert!(bad.to_string().contains("LSN 3"), "{bad}");
    });
}
