//! GGML quantization formats: the type table, CPU dequantization, and quantization for the writer.
//!
//! Dequantization is bit-identical to the `gguf` Python package (0.19.0), checked against
//! `fixtures/quant/` by `tests/quant_fixture.rs`. Quantization writes valid blocks of the formats in
//! `GgmlType::QUANTIZABLE`; `error_bound` states how far a round trip may move each block.

mod float;
mod k_quantize;
mod k_quants;
mod legacy;
mod legacy_quant;
mod random;
mod scale;
mod types;

pub use random::{random_blocks, random_weight};
pub use types::{GgmlType, QK_K};

use crate::{Error, Result};

/// Dequantizes `data` (whole blocks of `ty`) into `out`; `out.len()` elements.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    if !ty.can_dequantize() {
        return Err(Error::UnsupportedType {
            ty,
            op: "dequantize",
        });
    }
    let (block, type_size) = (ty.block_size(), ty.type_size());
    if !out.len().is_multiple_of(block) {
        return Err(Error::BlockMisaligned {
            what: "dequantize output".into(),
            len: out.len(),
            block,
            ty,
        });
    }
    let expected = out.len() / block * type_size;
    if data.len() != expected {
        return Err(Error::SizeMismatch {
            what: format!("dequantize input ({} elements of {ty})", out.len()),
            expected: expected as u64,
            actual: data.len() as u64,
        });
    }
    use GgmlType::*;
    match ty {
        F32 => float::dequantize_f32(data, out),
        F16 => float::dequantize_f16(data, out),
        BF16 => float::dequantize_bf16(data, out),
        Q4_0 => for_each_block(data, out, legacy::dequantize_q4_0),
        Q4_1 => for_each_block(data, out, legacy::dequantize_q4_1),
        Q5_0 => for_each_block(data, out, legacy::dequantize_q5_0),
        Q5_1 => for_each_block(data, out, legacy::dequantize_q5_1),
        Q8_0 => for_each_block(data, out, legacy::dequantize_q8_0),
        Q2_K => for_each_block(data, out, k_quants::dequantize_q2_k),
        Q3_K => for_each_block(data, out, k_quants::dequantize_q3_k),
        Q4_K => for_each_block(data, out, k_quants::dequantize_q4_k),
        Q5_K => for_each_block(data, out, k_quants::dequantize_q5_k),
        Q6_K => for_each_block(data, out, k_quants::dequantize_q6_k),
        _ => {
            return Err(Error::UnsupportedType {
                ty,
                op: "dequantize",
            })
        }
    }
    Ok(())
}

/// Convenience: element count inferred from data.len().
pub fn dequantize_to_vec(ty: GgmlType, data: &[u8]) -> Result<Vec<f32>> {
    let type_size = ty.type_size();
    if !data.len().is_multiple_of(type_size) {
        return Err(Error::SizeMismatch {
            what: format!("dequantize input (not a whole number of {type_size}-byte {ty} blocks)"),
            expected: (data.len() - data.len() % type_size) as u64,
            actual: data.len() as u64,
        });
    }
    let mut out = vec![0.0; data.len() / type_size * ty.block_size()];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Appends the quantized encoding of `src` (a whole number of blocks) to `out`.
///
/// Non-finite inputs produce valid blocks with unspecified (possibly NaN) values.
pub fn quantize(ty: GgmlType, src: &[f32], out: &mut Vec<u8>) -> Result<()> {
    if !ty.can_quantize() {
        return Err(Error::UnsupportedType { ty, op: "quantize" });
    }
    let block = ty.block_size();
    if !src.len().is_multiple_of(block) {
        return Err(Error::BlockMisaligned {
            what: "quantize input".into(),
            len: src.len(),
            block,
            ty,
        });
    }
    out.reserve(src.len() / block * ty.type_size());
    use GgmlType::*;
    match ty {
        F32 => float::quantize_f32(src, out),
        F16 => float::quantize_f16(src, out),
        Q8_0 => quantize_each_block(src, out, legacy_quant::quantize_q8_0),
        Q4_0 => quantize_each_block(src, out, legacy_quant::quantize_q4_0),
        Q4_1 => quantize_each_block(src, out, legacy_quant::quantize_q4_1),
        Q4_K => quantize_each_block(src, out, k_quantize::quantize_q4_k),
        Q6_K => quantize_each_block(src, out, k_quantize::quantize_q6_k),
        _ => return Err(Error::UnsupportedType { ty, op: "quantize" }),
    }
    Ok(())
}

/// Largest |x - dequant(quant(x))| the format allows for this block of source values
/// (one block of `ty.block_size()` values), used by round-trip tests of the writer and synth.
///
/// Each format's formula is documented beside its quantizer. Blocks with NaN or infinite values
/// give `f32::INFINITY` (the difference is undefined); a type that `quantize` does not produce, or a
/// slice that is not one block long, gives NaN so that no comparison against it can pass.
pub fn error_bound(ty: GgmlType, block: &[f32]) -> f32 {
    if !ty.can_quantize() || block.len() != ty.block_size() {
        return f32::NAN;
    }
    if !scale::all_finite(block) {
        return f32::INFINITY;
    }
    use GgmlType::*;
    match ty {
        F32 => 0.0,
        F16 => float::f16_error_bound(block),
        Q8_0 => legacy_quant::q8_0_error_bound(block),
        Q4_0 => legacy_quant::q4_0_error_bound(block),
        Q4_1 => legacy_quant::q4_1_error_bound(block),
        Q4_K => k_quantize::q4_k_error_bound(block),
        Q6_K => k_quantize::q6_k_error_bound(block),
        _ => f32::NAN,
    }
}

/// Runs `f` over matching blocks of `data` (TS bytes each) and `out` (BS values each), as arrays so
/// the per-block code indexes without bounds checks. Lengths are checked by the caller.
fn for_each_block<const TS: usize, const BS: usize>(
    data: &[u8],
    out: &mut [f32],
    f: impl Fn(&[u8; TS], &mut [f32; BS]),
) {
    for (b, o) in data.chunks_exact(TS).zip(out.chunks_exact_mut(BS)) {
        if let (Ok(b), Ok(o)) = (b.try_into(), o.try_into()) {
            f(b, o);
        }
    }
}

/// Runs `f` over the BS-value blocks of `src`; each call appends one encoded block to `out`.
fn quantize_each_block<const BS: usize>(
    src: &[f32],
    out: &mut Vec<u8>,
    f: impl Fn(&[f32; BS], &mut Vec<u8>),
) {
    for b in src.chunks_exact(BS) {
        if let Ok(b) = b.try_into() {
            f(b, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dequantizable_type_is_dispatched() {
        for ty in GgmlType::DEQUANTIZABLE {
            let data = vec![0u8; 2 * ty.type_size()];
            let out = dequantize_to_vec(ty, &data).unwrap();
            assert_eq!(out.len(), 2 * ty.block_size(), "{ty}");
        }
    }

    #[test]
    fn every_quantizable_type_is_dispatched_and_sized() {
        for ty in GgmlType::QUANTIZABLE {
            let src: Vec<f32> = (0..2 * ty.block_size()).map(|i| i as f32 * 0.01).collect();
            let mut out = vec![0xAA];
            quantize(ty, &src, &mut out).unwrap();
            assert_eq!(out.len(), 1 + 2 * ty.type_size(), "{ty}");
            assert!(error_bound(ty, &src[..ty.block_size()]).is_finite(), "{ty}");
        }
    }

    #[test]
    fn misuse_of_error_bound_gives_nan() {
        assert!(error_bound(GgmlType::Q5_0, &[0.0; 32]).is_nan());
        assert!(error_bound(GgmlType::Q8_0, &[0.0; 31]).is_nan());
        assert_eq!(error_bound(GgmlType::Q8_0, &[f32::NAN; 32]), f32::INFINITY);
    }
}
