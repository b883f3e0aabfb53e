//! A key-value store that keeps its data in memory and its log on disk: every change is
//! appended (durably) before it is applied, and on start the store replays the log to rebuild
//! its state. When the log grows, the store compacts it: it appends its whole state as one
//! batch and checkpoints at the batch's first record, so the older records can go.
//!
//! ```sh
//! cargo run --example kv_store                      # a tour in a temporary directory
//! cargo run --example kv_store -- ./kv set a 1      # a store in ./kv that outlives the run
//! cargo run --example kv_store -- ./kv set b 2
//! cargo run --example kv_store -- ./kv get a
//! cargo run --example kv_store -- ./kv del a
//! cargo run --example kv_store -- ./kv list
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use tidelog::{Durability, Log};

/// One change, as it is stored in a record: a tag byte, then the key's length (4 bytes, little
/// endian), the key, and for a `Set` the value.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Set(String, String),
    Delete(String),
}

impl Change {
    fn encode(&self) -> Vec<u8> {
        let (tag, key, value) = match self {
            Change::Set(k, v) => (b'S', k, v.as_str()),
            Change::Delete(k) => (b'D', k, ""),
        };
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&u32::try_from(key.len()).expect("short key").to_le_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(value.as_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Change> {
        let (&tag, rest) = bytes.split_first()?;
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let key = String::from_utf8(rest.get(4..4 + len)?.to_vec()).ok()?;
        let value = String::from_utf8(rest.get(4 + len..)?.to_vec()).ok()?;
        match tag {
            b'S' => Some(Change::Set(key, value)),
            b'D' => Some(Change::Delete(key)),
            _ => None,
        }
    }
}

/// The store: the map in memory, the log on disk.
struct Store {
    log: Log,
    map: BTreeMap<String, String>,
    /// Compact once the log holds this many records more than the map has keys.
    compact_after: u64,
}

impl Store {
    /// Opens the log (recovery runs first) and replays every record it holds.
    fn open(dir: &Path) -> tidelog::Result<Store> {
        let log = Log::open(dir)?;
        let mut map = BTreeMap::new();
        for record in log.iter()? {
            match Change::decode(record?.data()) {
                Some(Change::Set(k, v)) => {
                    map.insert(k, v);
                }
                Some(Change::Delete(k)) => {
                    map.remove(&k);
                }
                None => eprintln!("skipping a record this store did not write"),
            }
        }
        let records = log.last_lsn().get() + 1 - log.checkpoint_lsn().get();
        println!(
            "opened {}: {} keys from {records} records{}",
            dir.display(),
            map.len(),
            if log.recovery_report().is_clean() {
                ""
            } else {
                " (recovery cut a torn tail)"
            },
        );
        Ok(Store {
            log,
            map,
            compact_after: 1000,
        })
    }

    /// Logs the change durably, then applies it: once this returns, it survives a crash.
    fn apply(&mut self, change: Change) -> tidelog::Result<()> {
        self.log.append(&change.encode(), Durability::Synced)?;
        match change {
            Change::Set(k, v) => self.map.insert(k, v),
            Change::Delete(k) => self.map.remove(&k),
        };
        let held = self.log.last_lsn().get() + 1 - self.log.checkpoint_lsn().get();
        if held > self.map.len() as u64 + self.compact_after {
            self.compact()?;
        }
        Ok(())
    }

    /// Appends the whole state as one batch (all or nothing) and drops every record before it.
    fn compact(&mut self) -> tidelog::Result<()> {
        let batch: Vec<Vec<u8>> = self
            .map
            .iter()
            .map(|(k, v)| Change::Set(k.clone(), v.clone()).encode())
            .collect();
        let first = if batch.is_empty() {
            self.log.last_lsn().next() // nothing to keep: drop everything
        } else {
            self.log.append_batch(&batch, Durability::Synced)?.0
        };
        self.log.checkpoint(first)?;
        println!("compacted: the log now starts at LSN {first}");
        Ok(())
    }
}

fn tour(dir: &Path) -> tidelog::Result<()> {
    let mut store = Store::open(dir)?;
    store.compact_after = 50;
    for i in 0..120 {
        store.apply(Change::Set(
            format!("user:{}", i % 10),
            format!("visit {i}"),
        ))?;
    }
    store.apply(Change::Delete("user:3".into()))?;
    drop(store); // as if the process stopped here

    let store = Store::open(dir)?; // a new start: the log is replayed
    assert_eq!(store.map.len(), 9);
    assert_eq!(store.map["user:9"], "visit 119");
    assert!(!store.map.contains_key("user:3"));
    for (k, v) in &store.map {
        println!("  {k} = {v}");
    }
    Ok(())
}

fn main() -> tidelog::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, command)) = args.split_first() else {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        return tour(&tmp.path().join("kv"));
    };
    let mut store = Store::open(Path::new(dir))?;
    match command
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["set", key, value] => store.apply(Change::Set((*key).into(), (*value).into()))?,
        ["del", key] => store.apply(Change::Delete((*key).into()))?,
        ["get", key] => println!(
            "{}",
            store.map.get(*key).map_or("(not set)", String::as_str)
        ),
        ["list"] | [] => store.map.iter().for_each(|(k, v)| println!("{k} = {v}")),
        ["compact"] => store.compact()?,
        _ => {
            eprintln!("usage: kv_store [DIR [set KEY VALUE | del KEY | get KEY | list | compact]]")
        }
    }
    Ok(())
}
