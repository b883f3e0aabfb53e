//! Crash simulation of the store: a script of votes, appends, truncates and purges (within the
//! log and past its end) is cut at every storage operation in turn, the in-memory storage
//! crashes (dropping what was not synced, or keeping a torn part of it), and the reopened store
//! is checked against openraft's invariants: the vote never goes back, the entries are a gap-free
//! run of what was appended (after the last truncate), every acknowledged entry is there, and
//! purged entries never come back.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use tidelog::Log;
use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage, Storage};
use tidelog_raft::LogStore;
use tidelog_raft::kv::{Request, TypeConfig};

type Store = LogStore<TypeConfig>;

#[derive(Debug, Clone, Copy)]
enum Step {
    Vote(u64),
    /// `n` entries of a term at the next index.
    Append(u64, u64),
    /// Delete the entries from the index `back` below the next on.
    Truncate(u64),
    /// Purge up to the index `back` below the last.
    Purge(u64),
    /// Purge up to `ahead` past the last entry (a snapshot installed from the leader).
    PurgePast(u64),
}

fn script() -> Vec<Step> {
    use Step::{Append, Purge, PurgePast, Truncate, Vote};
    vec![
        Vote(1),
        Append(1, 20),
        Vote(2),
        Append(2, 30),
        Truncate(15),
        Append(3, 10),
        Purge(30),
        Append(3, 40),
        PurgePast(5),
        Append(4, 10),
        Truncate(3),
        Vote(5),
        Append(5, 25),
        Purge(2),
        Append(5, 5),
    ]
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Request::Set {
            key: format!("key {index}"),
            value: format!(
                "term {term} index {index} {}",
                "x".repeat((index % 30) as usize)
            ),
        }),
    }
}

/// What the test knows of the store it drove.
#[derive(Debug, Default)]
struct Model {
    /// Every entry ever appended at each index (the latest), acknowledged or not.
    history: BTreeMap<u64, String>,
    /// What the store must hold after the steps that returned `Ok`.
    acked: BTreeMap<u64, String>,
    /// The index the next append takes.
    next: u64,
    purged: Option<u64>,
    vote: Option<Vote<u64>>,
    failed: Option<Step>,
}

fn shown(e: &Entry<TypeConfig>) -> String {
    format!("{e:?}")
}

/// Runs the script until the first error.
async fn run(store: &mut Store) -> Model {
    let mut m = Model::default();
    for step in script() {
        let result = match step {
            Step::Vote(term) => {
                let vote = Vote::new(term, 1);
                store.save_vote(&vote).await.map(|()| m.vote = Some(vote))
            }
            Step::Append(term, n) => {
                let entries: Vec<_> = (m.next..m.next + n).map(|i| entry(term, i)).collect();
                for e in &entries {
                    m.history.insert(e.log_id.index, shown(e));
                }
                store.blocking_append(entries.clone()).await.map(|()| {
                    for e in &entries {
                        m.acked.insert(e.log_id.index, shown(e));
                    }
                    m.next += n;
                })
            }
            Step::Truncate(back) => {
                let index = m.next - back;
                let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
                store.truncate(log_id).await.map(|()| {
                    m.acked.retain(|&i, _| i < index);
                    m.next = index;
                })
            }
            Step::Purge(_) | Step::PurgePast(_) => {
                let index = match step {
                    Step::Purge(back) => m.next - 1 - back,
                    Step::PurgePast(ahead) => m.next - 1 + ahead,
                    _ => unreachable!(),
                };
                let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
                store.purge(log_id).await.map(|()| {
                    m.acked.retain(|&i, _| i > index);
                    m.purged = Some(index);
                    m.next = m.next.max(index + 1);
                })
            }
        };
        if result.is_err() {
            m.failed = Some(step);
            return m;
        }
    }
    m
}

fn open(storage: Arc<dyn Storage>) -> tidelog::Result<Log> {
    Log::builder("/raft")
        .storage(storage)
        .segment_bytes(4096)
        .write_buffer_bytes(0)
        .open()
}

/// Reopens the crashed store and checks it against the model.
async fn verify(mem: &MemStorage, m: &Model, context: &str) {
    let log = open(Arc::new(mem.clone())).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    let mut store = Store::from_log(log).unwrap_or_else(|e| panic!("{context}: store: {e}"));
    let vote = store.read_vote().await.expect("read_vote");
    let failed_vote = match m.failed {
        Some(Step::Vote(term)) => Some(Vote::new(term, 1)),
        _ => None,
    };
    assert!(
        vote == m.vote || (failed_vote.is_some() && vote == failed_vote),
        "{context}: vote {vote:?}, acknowledged {:?}",
        m.vote
    );
    let state = store.get_log_state().await.expect("get_log_state");
    let purged = state.last_purged_log_id.map(|p| p.index);
    assert!(
        purged >= m.purged,
        "{context}: purged {purged:?}, acknowledged {:?}",
        m.purged
    );
    let entries = store.try_get_log_entries(..).await.expect("entries");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    if let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) {
        assert_eq!(
            indexes,
            (first..=last).collect::<Vec<_>>(),
            "{context}: a hole"
        );
        assert!(
            purged.is_none_or(|p| first > p),
            "{context}: entry {first} at or below the purged {purged:?}"
        );
        assert_eq!(
            state.last_log_id.map(|l| l.index),
            Some(last),
            "{context}: last log id"
        );
    }
    for e in &entries {
        assert_eq!(
            m.history.get(&e.log_id.index),
            Some(&shown(e)),
            "{context}: entry {} was never appended so",
            e.log_id.index
        );
    }
    for (&index, e) in &m.acked {
        let may_be_gone = match m.failed {
            Some(Step::Truncate(back)) => index >= m.next - back,
            Some(Step::Purge(_) | Step::PurgePast(_)) => true,
            _ => false,
        } || purged.is_some_and(|p| index <= p);
        if may_be_gone {
            continue;
        }
        let found = entries.iter().find(|x| x.log_id.index == index).map(shown);
        assert_eq!(
            found.as_ref(),
            Some(e),
            "{context}: acknowledged entry {index} lost"
        );
    }
    // The store goes on after what it shows.
    let next = state.last_log_id.map_or(0, |l| l.index + 1);
    store
        .blocking_append([entry(9, next)])
        .await
        .unwrap_or_else(|e| panic!("{context}: append after recovery: {e}"));
    let got = store.try_get_log_entries(next..=next).await.expect("read");
    assert_eq!(got.len(), 1, "{context}");
}

#[test]
fn a_store_crashed_at_every_storage_operation_keeps_openraft_invariants() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mem = MemStorage::new();
        let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
        let mut store =
            Store::from_log(open(Arc::new(faulty.clone())).expect("open")).expect("store");
        let m = run(&mut store).await;
        assert!(m.failed.is_none(), "{m:?}");
        let total = faulty.mutating_ops();
        assert!(
            total > 100,
            "the script exercises the storage ({total} ops)"
        );
        for n in 0..=total {
            let mem = MemStorage::new();
            let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new().fail_after(n));
            let m = match open(Arc::new(faulty)).map(Store::from_log) {
                Ok(Ok(mut store)) => {
                    let m = run(&mut store).await;
                    std::mem::forget(store); // the process dies: no drop-time sync
                    m
                }
                _ => Model::default(),
            };
            let mode = match n % 3 {
                0 => CrashMode::DropUnsynced,
                1 => CrashMode::Torn { seed: n },
                _ => CrashMode::Reordered { seed: n },
            };
            mem.crash(mode);
            verify(
                &mem,
                &m,
                &format!("crash after op {n} of {total} ({mode:?})"),
            )
            .await;
        }
    });
}
