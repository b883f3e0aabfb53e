//! Crash tests of the store (filled in below).
