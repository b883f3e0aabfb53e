//! A 3-node openraft cluster in one process, each node's Raft log on tidelog: writes through
//! the leader, kills a follower, writes more, restarts the follower from its log directory, and
//! checks that its log recovered and caught up.
//!
//! ```sh
//! cargo run -p tidelog-raft --example cluster
//! ```
//!
//! The network is in-process: a router hands each RPC to the target node's `Raft` handle, and
//! a killed node is simply missing from it (its RPCs fail as unreachable).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft};
use tidelog_raft::LogStore;
use tidelog_raft::kv::{MemStateMachine, Request, TypeConfig};

type Node = Raft<TypeConfig>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// The nodes that are up, by id.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Node>>>,
}

impl Router {
    fn get(&self, id: u64) -> Option<Node> {
        self.nodes.lock().expect("router").get(&id).cloned()
    }
}

/// The connection of one node to another, through the router.
struct Connection {
    router: Router,
    target: u64,
}

#[derive(Debug)]
struct Down(u64);

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} is down", self.0)
    }
}

impl std::error::Error for Down {}

impl Connection {
    // The error is openraft's, as its network trait returns it.
    #[allow(clippy::result_large_err)]
    fn target<E: std::error::Error>(&self) -> Result<Node, RPCError<u64, BasicNode, E>> {
        self.router
            .get(self.target)
            .ok_or_else(|| RPCError::Unreachable(Unreachable::new(&Down(self.target))))
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let node = self.target()?;
        node.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let node = self.target()?;
        node.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let node = self.target()?;
        node.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Starts node `id` on the log in `dir` (created, or recovered) and a new state machine.
async fn start(
    id: u64,
    dir: &Path,
    router: &Router,
    config: &Arc<Config>,
) -> Result<(Node, MemStateMachine), Error> {
    let store = LogStore::<TypeConfig>::open(dir.join(format!("node-{id}")))?;
    let report = store.log().recovery_report();
    println!(
        "node {id}: log opened, {} records recovered, last LSN {}",
        report.records_recovered,
        store.log().last_lsn()
    );
    let sm = MemStateMachine::new();
    let raft = Raft::new(id, Arc::clone(config), router.clone(), store, sm.clone()).await?;
    router
        .nodes
        .lock()
        .expect("router")
        .insert(id, raft.clone());
    Ok((raft, sm))
}

/// Writes `n` keys from `first` through the leader.
async fn write(leader: &Node, first: u64, n: u64) -> Result<(), Error> {
    for i in first..first + n {
        leader
            .client_write(Request::Set {
                key: format!("key-{i:04}"),
                value: format!("value {i}"),
            })
            .await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let tmp = tempfile::tempdir()?;
    let config = Arc::new(
        Config {
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Default::default()
        }
        .validate()?,
    );
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, tmp.path(), &router, &config).await?);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    nodes[&1].0.initialize(members).await?;
    let leader_id = nodes[&1]
        .0
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await?
        .current_leader
        .ok_or("no leader")?;
    println!("node {leader_id} leads");
    let leader = nodes[&leader_id].0.clone();
    write(&leader, 0, 100).await?;
    println!("100 keys written through node {leader_id}");

    // Kill a follower: it leaves the network and shuts down; its log stays on disk.
    let victim = *nodes
        .keys()
        .find(|&&id| id != leader_id)
        .ok_or("no follower")?;
    router.nodes.lock().expect("router").remove(&victim);
    let (raft, _) = nodes.remove(&victim).ok_or("no victim")?;
    raft.shutdown().await?;
    drop(raft);
    println!("node {victim} killed");
    write(&leader, 100, 100).await?;
    println!("100 more keys written with node {victim} down");

    // Restart it from its log directory: it recovers its log and catches up.
    let (raft, sm) = start(victim, tmp.path(), &router, &config).await?;
    let last = leader
        .metrics()
        .borrow()
        .last_log_index
        .ok_or("no last index")?;
    raft.wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(Some(last), "the restarted node caught up")
        .await?;
    let missing: BTreeSet<u64> = (0..200)
        .filter(|i| sm.get(&format!("key-{i:04}")) != Some(format!("value {i}")))
        .collect();
    if !missing.is_empty() {
        return Err(format!("node {victim} lacks {} keys", missing.len()).into());
    }
    let metrics = raft.metrics().borrow().clone();
    println!(
        "node {victim} restarted, caught up to index {} and holds all 200 keys",
        metrics.last_applied.map_or(0, |l| l.index)
    );
    for (_, (raft, _)) in nodes {
        raft.shutdown().await?;
    }
    raft.shutdown().await?;
    println!("ok");
    Ok(())
}
