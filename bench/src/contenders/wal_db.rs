//! wal-db: a segmented log (64 MiB segments); `append` + `sync`, durable commit =
//! `append_and_sync` (group commit).

use std::path::Path;

use wal_db::{SegmentedStore, Wal as WalDb};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;

const SEGMENT_BYTES: u64 = 64 << 20;

pub fn open(dir: &Path, _purpose: Purpose) -> Result<Box<dyn Wal>> {
    Ok(Box::new(Adapter {
        wal: WalDb::open_segmented(dir, SEGMENT_BYTES)?,
    }))
}

struct Adapter {
    wal: WalDb<SegmentedStore>,
}

impl Wal for Adapter {
    fn append(&self, record: &[u8]) -> Result<()> {
        let _lsn = self.wal.append(record)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.wal.sync()?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        let _lsn = self.wal.append_and_sync(record)?;
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        for record in self.wal.iter()? {
            verify.check(record?.data())?;
        }
        Ok(Reading::Read)
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}
