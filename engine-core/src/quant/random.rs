//! Seeded random weights of any dequantizable type, for the backends' conformance tests: values
//! quantized where the quantizer writes the type, random valid blocks where it does not.

use super::{quantize, GgmlType};
use crate::rng::SplitMix64;
use crate::{Error, Result};

/// Byte offsets of the f16 scales (`d`, `dmin`/`m`) inside one block of each quantized type, so
/// random blocks get finite, positive scales.
fn f16_scale_offsets(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

fn values(rng: &mut SplitMix64, len: usize, scale: f32) -> impl Iterator<Item = f32> + '_ {
    (0..len).map(move |_| rng.next_signed_unit() * scale)
}

/// `blocks` random blocks of `ty` (for float types, `blocks` values in `[-scale, scale)`): random
/// quant bits under f16 scales in `scale · [0.002, 0.05)`.
pub fn random_blocks(rng: &mut SplitMix64, ty: GgmlType, blocks: usize, scale: f32) -> Vec<u8> {
    match ty {
        GgmlType::BF16 => values(rng, blocks, scale)
            .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::F16 => values(rng, blocks, scale)
            .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::F32 => values(rng, blocks, scale)
            .flat_map(f32::to_le_bytes)
            .collect(),
        _ => {
            let ts = ty.type_size();
            let mut out: Vec<u8> = (0..blocks * ts).map(|_| rng.next_u64() as u8).collect();
            for block in out.chunks_exact_mut(ts) {
                for &off in f16_scale_offsets(ty) {
                    let s = scale * (0.002 + 0.048 * (rng.next_signed_unit() * 0.5 + 0.5));
                    block[off..off + 2].copy_from_slice(&half::f16::from_f32(s).to_le_bytes());
                }
            }
            out
        }
    }
}

/// `len` values of `ty`: uniform values in `[-scale, scale)` quantized where `quantize` writes
/// `ty`, else `random_blocks`. An error if `len` is not a whole number of blocks.
pub fn random_weight(
    rng: &mut SplitMix64,
    ty: GgmlType,
    len: usize,
    scale: f32,
) -> Result<Vec<u8>> {
    if ty.bytes_for(len as u64).is_none() {
        return Err(Error::BlockMisaligned {
            what: "random weight".into(),
            len,
            block: ty.block_size(),
            ty,
        });
    }
    if !ty.can_quantize() {
        return Ok(random_blocks(rng, ty, len / ty.block_size(), scale));
    }
    let src: Vec<f32> = values(rng, len, scale).collect();
    let mut bytes = Vec::new();
    quantize(ty, &src, &mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_to_vec;

    #[test]
    fn every_dequantizable_type_gets_finite_values() {
        let mut rng = SplitMix64::new(5);
        for ty in GgmlType::DEQUANTIZABLE {
            let len = 2 * ty.block_size().max(256);
            let bytes = random_weight(&mut rng, ty, len, 2.0).unwrap();
            let v = dequantize_to_vec(ty, &bytes).unwrap();
            assert_eq!(v.len(), len, "{ty}");
            assert!(v.iter().all(|x| x.is_finite()), "{ty}");
            assert!(v.iter().any(|&x| x != 0.0), "{ty}");
        }
        assert!(random_weight(&mut rng, GgmlType::Q4_0, 33, 1.0).is_err());
    }
}
