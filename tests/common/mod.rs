//! Helpers shared by the integration tests: a seeded generator, so that one seed is one
//! exact, replayable run, and [`tap`], a simulated disk that fails or snapshots any operation.
#![allow(dead_code)] // each test crate uses a different part

pub mod tap;

/// splitmix64: small, seedable and good enough to pick workloads and damage.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Random bytes of a random length in `lo..=hi`.
    pub fn blob(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let len = self.range(lo, hi) as usize;
        self.bytes(len)
    }

    /// A payload of a random length in `lo..=hi`: random bytes half the time, a
    /// compressible pattern otherwise (so codecs get both kinds of input).
    pub fn payload(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let len = self.range(lo, hi) as usize;
        if self.chance(50) {
            let b = self.next() as u8;
            (0..len).map(|i| b.wrapping_add((i % 4) as u8)).collect()
        } else {
            self.bytes(len)
        }
    }
}
