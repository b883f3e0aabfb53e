//! The Raft workload (`--only raft`, not run by default): entries committed through openraft on
//! tidelog-raft's store, by 1, 4 and 16 concurrent tasks, beside raft-engine's
//! `Engine::write(.., sync = true)` and tidelog's own durable append from as many threads (W2's
//! calls), each in a process of its own.
//!
//! The openraft case is a single-node cluster: each task calls `client_write` with a 100 B
//! value and waits for it, which returns once the entry is durable in the log, committed and
//! applied to an in-memory state machine. Entries per fsync count the log's fsyncs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft};
use tidelog_raft::LogStore;
use tidelog_raft::kv::{MemStateMachine, Request, TypeConfig};

use crate::contenders::Kind;
use crate::stats::Metrics;
use crate::{Outcome, Result, Runs, runner};

/// The numbers of concurrent appending tasks (threads for the peers).
pub const TASKS: [usize; 3] = [1, 4, 16];

/// A network with no peers: a single-node cluster never calls it.
struct Alone;

#[derive(Debug)]
struct NoPeers;

impl std::fmt::Display for NoPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a single-node cluster has no peers")
    }
}

impl std::error::Error for NoPeers {}

impl RaftNetworkFactory<TypeConfig> for Alone {
    type Network = Alone;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Alone {
        Alone
    }
}

impl RaftNetwork<TypeConfig> for Alone {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }
}

/// Child `raft-commits`: a single-node openraft cluster on tidelog-raft's store in `dir`,
/// `tasks` tasks committing 100 B values for `duration`.
pub fn commits_child(dir: &Path, tasks: usize, duration: Duration) -> Result<Metrics> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = LogStore::<TypeConfig>::open(dir)?;
        let log = store.clone();
        let config = Arc::new(Config::default().validate()?);
        let raft = Raft::new(1, config, Alone, store, MemStateMachine::new()).await?;
        raft.initialize(BTreeMap::from([(1, BasicNode::default())]))
            .await?;
        raft.wait(Some(Duration::from_secs(10)))
            .current_leader(1, "leading")
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let before = log.log().metrics();
        let t0 = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (raft, stop, committed) =
                    (raft.clone(), Arc::clone(&stop), Arc::clone(&committed));
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let value = format!("{t:04}-{i:016}-{}", "v".repeat(79));
                        raft.client_write(Request::Set {
                            key: format!("{t}"),
                            value,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                        committed.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = log.log().metrics();
        let fsyncs = after.fsyncs - before.fsyncs;
        raft.shutdown().await?;
        let mut m = Metrics::new();
        m.insert("commits".into(), committed.load(Ordering::Relaxed) as f64);
        m.insert("secs".into(), secs);
        m.insert("lib_syncs".into(), fsyncs as f64);
        // openraft's append calls, and the entries they carried.
        m.insert("appends".into(), (after.appends - before.appends) as f64);
        m.insert("entries".into(), (after.records - before.records) as f64);
        Ok(m)
    })
}

/// The workload's figures by case: `openraft-t{T}`, `raft-engine-t{T}`, `tidelog-t{T}`.
pub type RaftResults = BTreeMap<String, Outcome>;

/// The workload, `runs` times: at each of [`TASKS`], openraft on tidelog-raft, then
/// raft-engine's and tidelog's durable commits from as many threads.
pub fn measure(
    runs: usize,
    secs: f64,
    dev_arg: &str,
    case_dir: &mut dyn FnMut(&str) -> PathBuf,
    clean: &dyn Fn(&Path),
) -> RaftResults {
    let ms = (secs * 1000.0) as u64;
    let timeout = Duration::from_secs_f64(secs + 300.0);
    let mut acc = Runs::default();
    let mut keys = Vec::new();
    for t in TASKS {
        for who in ["openraft", "raft-engine", "tidelog"] {
            keys.push(format!("{who}-t{t}"));
        }
    }
    for r in 0..runs {
        for t in TASKS {
            for who in ["openraft", "raft-engine", "tidelog"] {
                let key = format!("{who}-t{t}");
                let d = case_dir(&format!("raft-{key}"));
                let out = match who {
                    "openraft" => runner::run_child(
                        "raft-commits",
                        Kind::Tidelog,
                        &d,
                        &[format!("tasks={t}"), format!("ms={ms}")],
                        timeout,
                    ),
                    _ => runner::run_child(
                        "commits",
                        if who == "tidelog" {
                            Kind::Tidelog
                        } else {
                            Kind::RaftEngine
                        },
                        &d,
                        &[format!("threads={t}"), format!("ms={ms}"), dev_arg.into()],
                        timeout,
                    ),
                };
                clean(&d);
                match &out {
                    Ok(m) => eprintln!(
                        "[raft] run {}/{runs} {key}: {:.0} commits/s, {:.1} per fsync",
                        r + 1,
                        m["commits"] / m["secs"],
                        m.get("lib_syncs").map_or(f64::NAN, |s| m["commits"] / s)
                    ),
                    Err(e) => eprintln!("[raft] run {}/{runs} {key} FAILED: {e}", r + 1),
                }
                acc.add(key, out);
            }
        }
    }
    acc.outcomes(keys)
}
