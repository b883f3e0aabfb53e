//! Small newtypes that keep LSNs apart from other integers.

use std::fmt;

/// A log sequence number: the dense position of a record in its log (1, 2, 3, …).
///
/// Every record carries its LSN on disk. `Lsn::ZERO` is not a record's LSN; it stands for "none
/// yet" (for example the durable LSN of an empty log).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(u64);

impl Lsn {
    /// "No record": below every record's LSN.
    pub const ZERO: Lsn = Lsn(0);
    /// The LSN of the first record of a new log.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN with the given number.
    pub const fn new(n: u64) -> Self {
        Lsn(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The LSN after this one.
    #[must_use]
    pub const fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }

    /// The LSN before this one (`ZERO` stays `ZERO`).
    #[must_use]
    pub const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({})", self.0)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}
