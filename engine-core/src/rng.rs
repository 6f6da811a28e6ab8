//! A small seeded PRNG (SplitMix64) for synth and sampling. No `getrandom`: the same code runs on wasm64, and every value
//! is a pure function of the seed, so synthesized files are reproducible byte for byte.

/// SplitMix64: fast, statistically fine for weights, trivially seekable by re-seeding.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A stream for item `index` of stream `stream`, independent of how items are split over threads.
    pub fn derive(seed: u64, stream: u64, index: u64) -> Self {
        let mut s = Self(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
        let a = s.next_u64();
        Self(a ^ index.wrapping_mul(0x9FB2_1C65_1E98_DF25))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_signed_unit(&mut self) -> f32 {
        // 24 random bits map exactly onto f32's mantissa.
        ((self.next_u64() >> 40) as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
    }
}
