//! CRC-32C of the short pieces frames are, which the hot paths checksum one by one (a 100-byte
//! record's frame is 132 bytes).
//!
//! The `crc32c` crate is built for long buffers: for a frame it takes the bytes before the first
//! 8-byte boundary and after the last one a byte at a time, and spends about 300 instructions
//! on 128 bytes (measured with `valgrind --tool=callgrind` on the bulk append benchmark: a third
//! of all the instructions of an append). On x86-64 with SSE 4.2 a piece of up to
//! [`SHORT_MAX`] bytes is taken here 8 bytes at a time from wherever it starts (unaligned loads
//! cost nothing there), 4 and then 1 byte at a time at its end, the same CRC in about a fifth of
//! the instructions. Longer pieces, and other CPUs, go to the crate, which interleaves three
//! streams on long buffers. The value is the same either way (tested against the crate for
//! every length to 1 KiB at every alignment).
//!
//! The one `unsafe` in the crate is the call into the SSE 4.2 function, made only once the CPU
//! is known to have SSE 4.2.

/// The longest piece taken 8 bytes at a time here; longer ones go to the crate.
const SHORT_MAX: usize = 512;

/// The CRC-32C of `bytes`, continuing from `crc` (the value of the bytes before them, or a
/// seed), as `crc32c::crc32c_append` computes it.
#[inline]
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() <= SHORT_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `sse42::append` needs SSE 4.2 alone, and the CPU has it (checked just now;
        // the check is a cached load after the first call).
        #[allow(unsafe_code)]
        return unsafe { sse42::append(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

#[cfg(target_arch = "x86_64")]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u32, _mm_crc32_u64};

    #[target_feature(enable = "sse4.2")]
    pub(super) fn append(crc: u32, bytes: &[u8]) -> u32 {
        let mut c = u64::from(!crc);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            c = _mm_crc32_u64(c, u64::from_le_bytes(w));
        }
        // The CRC instructions keep the value in the low 32 bits.
        let mut c = c as u32;
        let mut rest = words.remainder();
        if rest.len() >= 4 {
            let (four, tail) = rest.split_at(4);
            let mut w = [0u8; 4];
            w.copy_from_slice(four);
            c = _mm_crc32_u32(c, u32::from_le_bytes(w));
            rest = tail;
        }
        for &b in rest {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_and_alignment_gives_the_crates_value() {
        let bytes: Vec<u8> = (0..1100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in 0..=1024 {
                let piece = &bytes[start..start + len];
                for seed in [0, 0x1234_5678, u32::MAX] {
                    assert_eq!(
                        crc32c_append(seed, piece),
                        crc32c::crc32c_append(seed, piece),
                        "start {start}, len {len}, seed {seed:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn pieces_chain_as_one() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for cut in [0, 1, 4, 7, 8, 28, 100, 299, 300] {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                crc32c_append(crc32c_append(7, a), b),
                crc32c::crc32c_append(7, &bytes),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_known_value_of_the_standard_check_string() {
        // CRC-32C of "123456789" (RFC 3720, B.4).
        assert_eq!(crc32c_append(0, b"123456789"), 0xE306_9283);
    }
}
