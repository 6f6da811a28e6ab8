//! The memory roofline of decode on the CPU: the weight bytes one token reads, and the read
//! bandwidth measured over the model's own mapped bytes with the same number of threads, so a
//! decode speed can be stated as a fraction of what memory allows (`sluice bench --roofline`).

use anyhow::{Context, Result};
use engine_core::gguf::GgufFile;
use engine_core::source::{ByteSource, MmapSource};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Most bytes the bandwidth pass reads: enough to leave every cache far behind, few enough to stay
/// a second or so and within memory when the model is larger than it.
const PROBE_BYTES: usize = 2 << 30;

/// Passes over the probe bytes; the first also faults the pages in, the best one is reported.
const PASSES: usize = 4;

/// Decode's memory bound for one model and thread count.
#[derive(Debug, Clone, Serialize)]
pub struct Roofline {
    /// Bytes of weights one decode step reads: every tensor once, but only one row of a token
    /// embedding that is not also the output head.
    pub weight_bytes_per_token: u64,
    /// Bytes read by the bandwidth pass.
    pub probe_bytes: u64,
    /// The best read bandwidth of the passes, GB/s (10⁹ bytes).
    pub read_gb_s: f64,
    /// `read_gb_s / weight_bytes_per_token`: the decode speed memory allows.
    pub roofline_tok_s: f64,
}

/// Measures the roofline of the model at `path` with `threads` reading threads.
pub fn measure(path: &Path, threads: usize) -> Result<Roofline> {
    let source = MmapSource::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file = GgufFile::read(&source).with_context(|| format!("reading {}", path.display()))?;
    let weight_bytes_per_token = bytes_per_token(&file);
    let start = file
        .tensors
        .iter()
        .map(|t| file.data_range(t).start)
        .min()
        .unwrap_or(0);
    let len = (source.len().saturating_sub(start)).min(PROBE_BYTES as u64);
    let bytes = source
        .slice(start, len)
        .context("the model file is not memory-mapped")?;
    let threads = threads.max(1);
    let mut best = f64::INFINITY;
    for _ in 0..PASSES {
        let t0 = Instant::now();
        let sum = read_all(bytes, threads);
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(sum);
    }
    let read_gb_s = len as f64 / best / 1e9;
    Ok(Roofline {
        weight_bytes_per_token,
        probe_bytes: len,
        read_gb_s,
        roofline_tok_s: read_gb_s * 1e9 / weight_bytes_per_token.max(1) as f64,
    })
}

/// The weight bytes one decode step of the model at `path` reads.
pub fn weight_bytes_per_token(path: &Path) -> Result<u64> {
    let source = MmapSource::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file = GgufFile::read(&source).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes_per_token(&file))
}

/// Every tensor's bytes, except that an embedding table with a separate output head contributes
/// one row (a token gathers its row; the head reads all of its own).
fn bytes_per_token(file: &GgufFile) -> u64 {
    let has_head = file.tensor("output.weight").is_some();
    file.tensors
        .iter()
        .map(|t| {
            if has_head && t.name == "token_embd.weight" {
                t.n_bytes / t.n_rows().max(1)
            } else {
                t.n_bytes
            }
        })
        .sum()
}

/// Reads every byte of `bytes` once, split in `threads` contiguous parts, and returns a checksum
/// (so the reads cannot be optimised away).
fn read_all(bytes: &[u8], threads: usize) -> u64 {
    let part = bytes.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = bytes
            .chunks(part)
            .map(|chunk| s.spawn(move || checksum(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0, u64::wrapping_add)
    })
}

/// A wrapping sum of 64-byte lines as eight u64 lanes, which compiles to wide loads.
fn checksum(bytes: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let (lines, rest) = bytes.as_chunks::<64>();
    for line in lines {
        let (words, _) = line.as_chunks::<8>();
        for (lane, w) in lanes.iter_mut().zip(words) {
            *lane = lane.wrapping_add(u64::from_le_bytes(*w));
        }
    }
    let tail = rest.iter().fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
    lanes.iter().fold(tail, |a, &l| a.wrapping_add(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_reads_every_byte() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        // Whole 64-byte lines as u64 words, the last partial line byte by byte.
        let lines = bytes.len() / 64 * 64;
        let words = bytes[..lines].chunks(8).fold(0u64, |a, c| {
            a.wrapping_add(u64::from_le_bytes(c.try_into().expect("8 bytes")))
        });
        let want = bytes[lines..]
            .iter()
            .fold(words, |a, &b| a.wrapping_add(u64::from(b)));
        assert_eq!(checksum(&bytes), want);
        assert_eq!(read_all(&bytes, 1), want);
        // Three parts of 334 bytes, each summed from its own start.
        let parts = bytes.chunks(334).map(checksum).fold(0, u64::wrapping_add);
        assert_eq!(read_all(&bytes, 3), parts);
    }
}
