//! f16 scale rounding with a known direction, and the building blocks of the error bounds.
//!
//! The quantizers round scales *up* in magnitude (and Q4_1's minimum *down*) so that the grid always
//! covers the block's values: the error is then at most half a step, which `error_bound` can state
//! from the values alone, whatever the f16 rounding did.

use half::f16;

/// Largest finite f16, as f32.
pub(super) const F16_MAX: f32 = 65504.0;

/// Slack for f32 rounding in the quantizer's arithmetic and in dequantization, relative to the
/// block's largest magnitude (the real effect is a few 2⁻²⁴; this leaves a wide margin).
pub(super) const SLACK: f32 = 1.0 / 65536.0;

/// Smallest f16 ≥ `v` for `v` ≥ 0, saturating at f16::MAX (NaN stays NaN).
#[inline]
pub(super) fn f16_round_up(v: f32) -> f16 {
    if v >= F16_MAX {
        return f16::MAX;
    }
    let h = f16::from_f32(v);
    if h.to_f32() < v {
        // Positive finite f16s are ordered like their bit patterns.
        f16::from_bits(h.to_bits() + 1)
    } else {
        h
    }
}

/// Largest f16 ≤ `v`, saturating at -f16::MAX (NaN stays NaN).
#[inline]
pub(super) fn f16_round_down(v: f32) -> f16 {
    if v <= -F16_MAX {
        return f16::MIN;
    }
    let h = f16::from_f32(v);
    if h.to_f32() > v {
        let bits = h.to_bits();
        if bits == 0 {
            // +0 > v: the next f16 down is the smallest negative subnormal.
            f16::from_bits(0x8001)
        } else if bits & 0x8000 != 0 {
            f16::from_bits(bits + 1)
        } else {
            f16::from_bits(bits - 1)
        }
    } else {
        h
    }
}

/// Upper bound on the gap between `v` and the next f16 up (or down): 2⁻¹⁰·|v| in the normal
/// range, 2⁻²⁴ in the subnormal range.
#[inline]
pub(super) fn f16_spacing(v: f32) -> f32 {
    (v.abs() * f32::powi(2.0, -10)).max(f32::powi(2.0, -24))
}

/// Upper bound of `f16_round_up(v)` computed from `v` alone.
#[inline]
pub(super) fn f16_up_bound(v: f32) -> f32 {
    (v + f16_spacing(v)).min(F16_MAX)
}

/// The value of largest magnitude (the first one on ties; 0 for an empty or all-zero slice).
#[inline]
pub(super) fn extreme(values: &[f32]) -> f32 {
    // Two passes: the max of |x| vectorizes; then the first value attaining it.
    let amax = abs_max(values);
    values
        .iter()
        .copied()
        .find(|x| x.abs() == amax)
        .unwrap_or(0.0)
}

/// The value of largest magnitude (the first one on ties) and the largest magnitude among values
/// of the opposite sign (0 if none).
#[inline]
pub(super) fn extreme_and_opposite(values: &[f32]) -> (f32, f32) {
    let extreme = extreme(values);
    let opposite = values
        .iter()
        .filter(|x| (**x < 0.0) != (extreme < 0.0))
        .fold(0.0f32, |m, x| m.max(x.abs()));
    (extreme, opposite)
}

/// Smallest and largest value.
#[inline]
pub(super) fn min_max(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// `1/d`, or 0 for a zero scale (every value then quantizes to the zero point).
#[inline]
pub(super) fn recip_or_zero(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Largest |x| in `values`.
#[inline]
pub(super) fn abs_max(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Error bound of a signed-absmax group: values ≈ step·q with q in [-n, n-1], the extreme placed at
/// -n (so the step's sign is opposite to the extreme's) and the step between `step_lo` and `step_up`.
/// Inside the grid the error is half a step; beyond it, the distance to the last grid point (the
/// opposite side reaches only (n-1)·step; either side is short if the step saturated).
pub(super) fn signed_absmax_bound(values: &[f32], n: f32, step_lo: f32, step_up: f32) -> f32 {
    let (extreme, opposite) = extreme_and_opposite(values);
    let amax = extreme.abs();
    (step_up / 2.0)
        .max(opposite - (n - 1.0) * step_lo)
        .max(amax - n * step_lo)
}

/// True if every value is finite; bounds are only meaningful then.
#[inline]
pub(super) fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_rounding_goes_the_right_way() {
        for v in [
            0.0,
            1e-9,
            3.3e-8,
            6e-8,
            1e-5,
            0.1,
            1.0 / 3.0,
            1.0,
            1234.567,
            65500.0,
        ] {
            let up = f16_round_up(v).to_f32();
            assert!(up >= v && up <= f16_up_bound(v), "up {v}: {up}");
            for s in [v, -v] {
                let down = f16_round_down(s).to_f32();
                assert!(down <= s && down >= s - f16_spacing(s), "down {s}: {down}");
            }
        }
        assert_eq!(f16_round_up(1e6), f16::MAX);
        assert_eq!(f16_round_down(-1e6), f16::MIN);
        assert_eq!(f16_round_down(-1e-9).to_bits(), 0x8001);
    }

    #[test]
    fn extreme_is_first_largest_and_opposite_is_other_sign() {
        assert_eq!(extreme_and_opposite(&[1.0, -3.0, 2.0, 3.0]), (-3.0, 3.0));
        assert_eq!(extreme_and_opposite(&[1.0, 4.0, 2.0]), (4.0, 0.0));
        assert_eq!(extreme_and_opposite(&[0.0, 0.0]), (0.0, 0.0));
    }
}
