//! The records every workload writes, and their verification on read-back.
//!
//! Record `i` of length `len`: the first 8 bytes are `i` as a little-endian u64, every other
//! byte is `i % 251`.

use crate::Result;

/// Size of the small records of W1, W2 and W4.
pub const SMALL: usize = 100;

/// Fills `buf` with record `i`.
pub fn fill(i: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
    buf[8..].fill((i % 251) as u8);
}

/// Checks records read back, in order, against what was written.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Index of the next record expected (so: how many were verified).
    pub next: u64,
    len: usize,
}

impl Verifier {
    pub fn new(len: usize) -> Self {
        Self { next: 0, len }
    }

    /// Checks the next record.
    pub fn check(&mut self, rec: &[u8]) -> Result<()> {
        let i = self.next;
        if rec.len() != self.len {
            return Err(format!("record {i}: {} bytes, expected {}", rec.len(), self.len).into());
        }
        let got = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
        if got != i {
            return Err(format!("record {i}: carries index {got}").into());
        }
        let b = (i % 251) as u8;
        if !rec[8..].iter().all(|&x| x == b) {
            return Err(format!("record {i}: payload bytes differ").into());
        }
        self.next += 1;
        Ok(())
    }
}
