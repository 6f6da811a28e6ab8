//! Portable kernels: the reference every SIMD path must match bit for bit, and the path used on
//! CPUs without AVX2 and on wasm32.
//!
//! Each weight block's integer dot product with the i16 activation block is exact (i32 for 32-value
//! blocks, at most 32·128·32767 in magnitude; i32 per lane for Q4_K; i64 for Q6_K super-blocks).
//! The f32 part is shared with the SIMD paths through `Lanes`, `Q4kLanes` and `q6_k_term`, so the
//! rounding is the same everywhere.

use super::QuantizedActivations;
use crate::quant::GgmlType;

/// Values per legacy (32-value) block.
pub(super) const QK: usize = 32;

/// Reads the little-endian f16 at `b[at..at + 2]` as f32 (exact).
#[inline(always)]
pub(super) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Eight f32 accumulators; 32-value block `b` of a row goes to lane `b % 8`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lanes(pub(super) [f32; 8]);

impl Lanes {
    /// Adds `(dw·dx)·isum` for block `b`: a block's scale product times its integer dot product.
    #[inline(always)]
    pub(super) fn add_block(&mut self, b: usize, dw: f32, dx: f32, isum: i32) {
        self.0[b % 8] += (dw * dx) * isum as f32;
    }

    /// Adds `mw·(dx·s)` for block `b`: a weight min times the activation block's sum.
    #[inline(always)]
    pub(super) fn add_min(&mut self, b: usize, mw: f32, dx: f32, s: i32) {
        self.0[b % 8] += mw * (dx * s as f32);
    }

    /// The lanes summed in a fixed order.
    #[inline(always)]
    pub(super) fn sum(&self) -> f32 {
        let l = &self.0;
        ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
    }
}

/// Q4_K's f32 accumulators: sixteen for the scaled weights (lane `l` takes value pairs `2l, 2l + 1`
/// of every sub-block, as one 512-bit `vpdpwssd` lays them out) and eight for the mins (lane `j`:
/// sub-block `j`). Per super-block a lane adds its exact integer sum times one scale product, so
/// no path needs a horizontal sum until the row ends.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Q4kLanes {
    pub(super) scaled: [f32; 16],
    pub(super) mins: Lanes,
}

impl Q4kLanes {
    /// Adds one super-block: `dxd = dx·d` times each lane's `Σ sc·q·x`, `dxm = dx·dmin` times each
    /// sub-block's `m·Σx`.
    #[inline(always)]
    pub(super) fn add(&mut self, dxd: f32, isc: &[i32; 16], dxm: f32, imin: &[i32; 8]) {
        for (a, &i) in self.scaled.iter_mut().zip(isc) {
            *a += dxd * i as f32;
        }
        for (a, &i) in self.mins.0.iter_mut().zip(imin) {
            *a += dxm * i as f32;
        }
    }

    /// The row's result: lanes `l` and `l + 8` added, summed as `Lanes`, less the mins' sum.
    #[inline(always)]
    pub(super) fn sum(&self) -> f32 {
        let s = &self.scaled;
        Lanes(std::array::from_fn(|l| s[l] + s[l + 8])).sum() - self.mins.sum()
    }
}

/// One Q6_K super-block's contribution: `dx·d·Σ sc·((q − 32)·x)` from the integer sum.
#[inline(always)]
pub(super) fn q6_k_term(dx: f32, d: f32, isc: i64) -> f32 {
    (dx * d) * (isc as f32)
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K: bytes 0..4
/// hold scales 0..4 (their top bits: the high bits of scales 4..8), bytes 4..8 the mins likewise,
/// bytes 8..12 the low nibbles of scales (low) and mins (high) 4..8.
#[inline(always)]
pub(super) fn q4_k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 0x3F, s[j + 4] & 0x3F)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Σ q·x over a Q8_0 block (f16 d, 32 signed bytes).
#[inline(always)]
pub(super) fn int_q8_0(w: &[u8; 34], x: &[i16; QK]) -> i32 {
    w[2..]
        .iter()
        .zip(x)
        .map(|(&q, &x)| i32::from(q as i8) * i32::from(x))
        .sum()
}

/// Σ (q − off)·x over 16 nibble bytes: value i is the low nibble of byte i, value i + 16 the high one.
#[inline(always)]
fn int_nibbles(nib: &[u8], x: &[i16; QK], off: i32) -> i32 {
    let (x_lo, x_hi) = x.split_at(QK / 2);
    nib.iter()
        .zip(x_lo.iter().zip(x_hi))
        .map(|(&b, (&xl, &xh))| {
            (i32::from(b & 0x0F) - off) * i32::from(xl) + (i32::from(b >> 4) - off) * i32::from(xh)
        })
        .sum()
}

/// Σ (q − 8)·x over a Q4_0 block (f16 d, 16 nibble bytes).
#[inline(always)]
pub(super) fn int_q4_0(w: &[u8; 18], x: &[i16; QK]) -> i32 {
    int_nibbles(&w[2..], x, 8)
}

/// Σ q·x over a Q4_1 block (f16 d, f16 m, 16 nibble bytes).
#[inline(always)]
pub(super) fn int_q4_1(w: &[u8; 20], x: &[i16; QK]) -> i32 {
    int_nibbles(&w[4..], x, 0)
}

/// Σ (q − 16)·x over a Q5_0 block (f16 d, 32 high bits — bit i for value i — 16 nibble bytes).
#[inline(always)]
pub(super) fn int_q5_0(w: &[u8; 22], x: &[i16; QK]) -> i32 {
    let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
    let (x_lo, x_hi) = x.split_at(QK / 2);
    w[6..]
        .iter()
        .zip(x_lo.iter().zip(x_hi))
        .enumerate()
        .map(|(i, (&b, (&xl, &xh)))| {
            let lo = i32::from(b & 0x0F) | (((qh >> i) & 1) << 4) as i32;
            let hi = i32::from(b >> 4) | (((qh >> (i + 16)) & 1) << 4) as i32;
            (lo - 16) * i32::from(xl) + (hi - 16) * i32::from(xh)
        })
        .sum()
}

/// The exact integer sums of a Q4_K super-block in `Q4kLanes`' layout: lane `l` is
/// `Σ_j sc_j·Σ_{t ∈ {2l, 2l+1}} q_j[t]·x_j[t]` over its eight 32-value sub-blocks (at most
/// 16·945·32767 < 2³¹), and min lane `j` is `m_j·Σ x_j` (at most 63·32·32767). `sums` are the
/// activation sums of the same eight sub-blocks.
#[inline(always)]
pub(super) fn int_q4_k(w: &[u8; 144], x: &[i16; 256], sums: &[i32]) -> ([i32; 16], [i32; 8]) {
    let (scales, qs) = (&w[4..16], &w[16..]);
    let (mut isc, mut imin) = ([0i32; 16], [0i32; 8]);
    for j in 0..8 {
        let (sc, m) = q4_k_scale_min(scales, j);
        let bytes = &qs[32 * (j / 2)..32 * (j / 2) + 32];
        let shift = 4 * (j % 2);
        let xs = &x[32 * j..32 * j + 32];
        for (l, lane) in isc.iter_mut().enumerate() {
            let pair: i32 = (2 * l..2 * l + 2)
                .map(|t| i32::from((bytes[t] >> shift) & 0x0F) * i32::from(xs[t]))
                .sum();
            *lane += i32::from(sc) * pair;
        }
        imin[j] = i32::from(m) * sums[j];
    }
    (isc, imin)
}

/// The exact integer sum `Σ_t sc_t·Σ (q − 32)·x` of a Q6_K super-block over its sixteen 16-value
/// sub-blocks. In half `h`, value 32·s + l takes nibble s/2 of ql[64h + 32(s%2) + l] and bits
/// 2s..2s+2 of qh[32h + l].
#[inline(always)]
pub(super) fn int_q6_k(w: &[u8; 210], x: &[i16; 256]) -> i64 {
    let (ql, rest) = w.split_at(128);
    let (qh, scales) = rest.split_at(64);
    let mut isc = 0i64;
    for h in 0..2 {
        for s in 0..4 {
            let lo = &ql[64 * h + 32 * (s % 2)..][..32];
            let hi = &qh[32 * h..32 * h + 32];
            let xs = &x[128 * h + 32 * s..][..32];
            for part in 0..2 {
                let dot: i32 = (16 * part..16 * part + 16)
                    .map(|l| {
                        let q = ((lo[l] >> (4 * (s / 2))) & 0x0F) | (((hi[l] >> (2 * s)) & 3) << 4);
                        (i32::from(q) - 32) * i32::from(xs[l])
                    })
                    .sum();
                isc += i64::from(scales[8 * h + 2 * s + part] as i8) * i64::from(dot);
            }
        }
    }
    isc
}

/// `out[r] = dot(row r of w, xq)` for `out.len()` rows of `row_bytes` bytes (checked by the caller).
pub(super) fn gemv(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xq: &QuantizedActivations,
    out: &mut [f32],
) {
    let rows = w.chunks_exact(row_bytes).zip(out.iter_mut());
    use GgmlType::*;
    match ty {
        Q8_0 => rows.for_each(|(r, o)| *o = dot_q8_0(r, xq)),
        Q4_0 => rows.for_each(|(r, o)| *o = dot_q4_0(r, xq)),
        Q4_1 => rows.for_each(|(r, o)| *o = dot_q4_1(r, xq)),
        Q5_0 => rows.for_each(|(r, o)| *o = dot_q5_0(r, xq)),
        Q4_K => rows.for_each(|(r, o)| *o = dot_q4_k(r, xq)),
        Q6_K => rows.for_each(|(r, o)| *o = dot_q6_k(r, xq)),
        // `supports` gates every caller.
        _ => out.fill(f32::NAN),
    }
}

/// A row of 32-value blocks without a min: `Σ_b (dw·dx)·isum_b` through `Lanes`.
#[inline(always)]
fn dot_symmetric<const TS: usize>(
    row: &[u8],
    xq: &QuantizedActivations,
    int: impl Fn(&[u8; TS], &[i16; QK]) -> i32,
) -> f32 {
    let (blocks, _) = row.as_chunks::<TS>();
    let (xs, _) = xq.qs.as_chunks::<QK>();
    let mut lanes = Lanes::default();
    for (b, ((w, x), &dx)) in blocks.iter().zip(xs).zip(&xq.d).enumerate() {
        lanes.add_block(b, f16_at(w, 0), dx, int(w, x));
    }
    lanes.sum()
}

fn dot_q8_0(row: &[u8], xq: &QuantizedActivations) -> f32 {
    dot_symmetric(row, xq, int_q8_0)
}

fn dot_q4_0(row: &[u8], xq: &QuantizedActivations) -> f32 {
    dot_symmetric(row, xq, int_q4_0)
}

fn dot_q5_0(row: &[u8], xq: &QuantizedActivations) -> f32 {
    dot_symmetric(row, xq, int_q5_0)
}

fn dot_q4_1(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<20>();
    let (xs, _) = xq.qs.as_chunks::<QK>();
    let mut lanes = Lanes::default();
    for (b, ((w, x), (&dx, &s))) in blocks
        .iter()
        .zip(xs)
        .zip(xq.d.iter().zip(&xq.sums))
        .enumerate()
    {
        lanes.add_block(b, f16_at(w, 0), dx, int_q4_1(w, x));
        lanes.add_min(b, f16_at(w, 2), dx, s);
    }
    lanes.sum()
}

fn dot_q4_k(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<144>();
    let (xs, _) = xq.qs.as_chunks::<256>();
    let mut acc = Q4kLanes::default();
    for ((w, x), (&dx, sums)) in blocks
        .iter()
        .zip(xs)
        .zip(xq.d.iter().zip(xq.sums.chunks_exact(8)))
    {
        let (isc, imin) = int_q4_k(w, x, sums);
        acc.add(dx * f16_at(w, 0), &isc, dx * f16_at(w, 2), &imin);
    }
    acc.sum()
}

fn dot_q6_k(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<210>();
    let (xs, _) = xq.qs.as_chunks::<256>();
    let mut acc = 0.0f32;
    for ((w, x), &dx) in blocks.iter().zip(xs).zip(&xq.d) {
        acc += q6_k_term(dx, f16_at(w, 208), int_q6_k(w, x));
    }
    acc
}
