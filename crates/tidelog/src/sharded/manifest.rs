//! The `SHARDS` file at the root of a sharded log: how many shards it has and which log each
//! shard directory must hold (docs/format.md, section 7). Written once, when the sharded log is
//! created, crash-safely (temporary file, fsync, rename, directory fsync); its presence is what
//! makes a root a sharded log.

use std::path::Path;

use crate::CorruptionKind;
use crate::error::{Error, IoContext, Result};
use crate::format::TEMP_SUFFIX;
use crate::io::{OpenMode, Storage};

/// The manifest's name in the root directory: a directory holding it is a sharded log.
pub const MANIFEST_FILE: &str = "SHARDS";
/// Its first eight bytes.
const MAGIC: &[u8; 8] = b"TLSHARDS";
/// The manifest format version.
const VERSION: u32 = 1;
/// The most shards a sharded log may have.
pub(crate) const MAX_SHARDS: usize = 4096;

/// What the manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The sharded log's own id.
    pub(crate) id: u128,
    /// The log id of the epoch journal.
    pub(crate) epochs: u128,
    /// The log id of each shard, in shard order.
    pub(crate) shards: Vec<u128>,
}

impl Manifest {
    /// The manifest's bytes: magic, version (u32), shard count (u32), id, epoch journal id,
    /// each shard's id (u128 each), and the CRC-32C of everything before it; little-endian.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + 8 + 16 * (2 + self.shards.len()) + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(self.shards.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.id.to_le_bytes());
        b.extend_from_slice(&self.epochs.to_le_bytes());
        for id in &self.shards {
            b.extend_from_slice(&id.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> std::result::Result<Manifest, CorruptionKind> {
        if b.len() < 16 {
            return Err(CorruptionKind::TruncatedHeader {
                len: b.len() as u64,
            });
        }
        if &b[..8] != MAGIC {
            return Err(CorruptionKind::BadMagic);
        }
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
        let version = u32_at(8);
        if version != VERSION {
            return Err(CorruptionKind::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let n = u32_at(12) as usize;
        if n == 0 || n > MAX_SHARDS {
            return Err(CorruptionKind::BadFrameHeader);
        }
        let len = 16 + 16 * (2 + n) + 4;
        if b.len() != len {
            return Err(CorruptionKind::TruncatedHeader {
                len: b.len() as u64,
            });
        }
        let stored = u32_at(len - 4);
        if crc32c::crc32c(&b[..len - 4]) != stored {
            return Err(CorruptionKind::HeaderChecksum);
        }
        let u128_at = |at: usize| u128::from_le_bytes(b[at..at + 16].try_into().unwrap_or([0; 16]));
        Ok(Manifest {
            id: u128_at(16),
            epochs: u128_at(32),
            shards: (0..n).map(|i| u128_at(48 + 16 * i)).collect(),
        })
    }
}

/// Reads the manifest of the sharded log at `root`; `None` if there is none.
pub(crate) fn read(storage: &dyn Storage, root: &Path) -> Result<Option<Manifest>> {
    let path = root.join(MANIFEST_FILE);
    let file = match storage.open(&path, OpenMode::ReadOnly) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("open", &path),
    };
    let len = file.len().at("stat", &path)?;
    let max = 16 + 16 * (2 + MAX_SHARDS) + 4;
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(max).min(max)];
    let n = file.read_full_at(&mut bytes, 0).at("read", &path)?;
    Manifest::decode(&bytes[..n])
        .map(Some)
        .map_err(|kind| Error::Corrupt {
            path,
            offset: 0,
            kind,
        })
}

/// Writes the manifest at `root` crash-safely, as a file of mode `mode` (on Unix, less the
/// umask).
pub(crate) fn write(
    storage: &dyn Storage,
    root: &Path,
    manifest: &Manifest,
    mode: u32,
) -> Result<()> {
    let path = root.join(MANIFEST_FILE);
    let tmp = root.join(format!("{MANIFEST_FILE}{TEMP_SUFFIX}"));
    let file = storage
        .create(&tmp, OpenMode::Truncate, mode)
        .at("create", &tmp)?;
    file.write_all_at(&manifest.encode(), 0).at("write", &tmp)?;
    file.sync_data().at("sync", &tmp)?;
    storage.rename(&tmp, &path).at("rename into place", &tmp)?;
    storage.sync_dir(root).at("sync directory", root)
}
