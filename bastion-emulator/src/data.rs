//! Test data shared by the tests and the benchmarks.

/// `len` reproducible bytes from `seed` (xorshift64): fast, deterministic, and incompressible
/// enough that a checksum or a compressing channel (ssh) sees every byte.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift must not start at zero.
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
