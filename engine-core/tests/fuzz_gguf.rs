//! Fuzzing `GgufFile::read` with proptest over mutated real headers: whatever is done to a valid
//! file, the reader returns `Ok` or a GGUF error, never panics, and stays within
//! `read_memory_bound` of heap.
//!
//! Bases: (a) the writer's sample file (every metadata value type, nested arrays, several tensor
//! types); (b) when `SLUICE_FUZZ_GGUF` names a GGUF file, its header up to the data section, at
//! most 2 MiB. The number of cases comes from `PROPTEST_CASES` (default 2000), so CI bounds the
//! run. A failure prints the base and the shrunk list of mutations; add it to
//! `malformed_gguf.rs` as a named case once fixed.

use engine_core::gguf::testing::{
    counting_is_active, read_measured, read_memory_bound, sample_file, CountingAlloc,
};
use engine_core::gguf::GgufFile;
use engine_core::source::{ByteSource, FileSource};
use engine_core::Error;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::ffi::OsStr;
use std::sync::OnceLock;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const DEFAULT_CASES: u32 = 2000;
/// Most bytes of a real model's header used as a base.
const MAX_REAL_HEADER: u64 = 2 << 20;
/// Bytes at the start and at the end of a base where mutations aim half the time: the header
/// and first keys, and the tensor directory of a header-only base.
const HOT_HEAD: usize = 4 << 10;
const HOT_TAIL: usize = 32 << 10;

fn bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut bases = vec![sample_file().expect("the writer's sample file")];
        match std::env::var_os("SLUICE_FUZZ_GGUF") {
            Some(path) => bases.push(real_header(&path)),
            None => eprintln!(
                "note: SLUICE_FUZZ_GGUF is not set; fuzzing the synthetic base only \
                 (point it at a GGUF model to add its header)"
            ),
        }
        bases
    })
}

/// The header of the GGUF file at `path`, after checking that the whole file parses.
fn real_header(path: &OsStr) -> Vec<u8> {
    let shown = path.to_string_lossy();
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("SLUICE_FUZZ_GGUF={shown}: {e}"));
    let file = GgufFile::read(&src)
        .unwrap_or_else(|e| panic!("SLUICE_FUZZ_GGUF={shown} does not parse: {e}"));
    let len = file.data_offset.min(src.len()).min(MAX_REAL_HEADER);
    eprintln!(
        "note: fuzzing the first {len} of {} header bytes of {shown} ({} keys, {} tensors)",
        file.data_offset,
        file.metadata.len(),
        file.tensors.len()
    );
    let mut bytes = vec![0; len as usize];
    src.read_at(0, &mut bytes).expect("reading the header");
    bytes
}

/// A position in the input, chosen when the mutation is applied.
#[derive(Debug, Clone, Copy)]
enum Spot {
    Head(Index),
    Tail(Index),
    Anywhere(Index),
}

impl Spot {
    /// A position in `0..len` (0 when `len` is 0).
    fn resolve(self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        match self {
            Spot::Head(i) => i.index(len.min(HOT_HEAD)),
            Spot::Tail(i) => len - 1 - i.index(len.min(HOT_TAIL)),
            Spot::Anywhere(i) => i.index(len),
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip {
        at: Spot,
        mask: u8,
    },
    /// Overwrite four bytes with a little-endian `u32` (clipped at the end).
    Set32 {
        at: Spot,
        value: u32,
    },
    /// Overwrite eight bytes with a little-endian `u64` (clipped at the end).
    Set64 {
        at: Spot,
        value: u64,
    },
    /// Cut the input.
    Truncate {
        at: Spot,
    },
    /// Insert a copy of `len` bytes from `from` at `to`.
    Duplicate {
        from: Spot,
        len: usize,
        to: Spot,
    },
    /// Overwrite the bytes at `to` with `len` bytes copied from `from`.
    Splice {
        from: Spot,
        len: usize,
        to: Spot,
    },
    Insert {
        at: Spot,
        bytes: Vec<u8>,
    },
    Remove {
        at: Spot,
        len: usize,
    },
}

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>) {
        match *self {
            Mutation::Flip { at, mask } => {
                if !b.is_empty() {
                    let i = at.resolve(b.len());
                    b[i] ^= mask;
                }
            }
            Mutation::Set32 { at, value } => overwrite(b, at, &value.to_le_bytes()),
            Mutation::Set64 { at, value } => overwrite(b, at, &value.to_le_bytes()),
            Mutation::Truncate { at } => b.truncate(at.resolve(b.len())),
            Mutation::Duplicate { from, len, to } => {
                let chunk = b[range(b.len(), from, len)].to_vec();
                let i = to.resolve(b.len() + 1);
                b.splice(i..i, chunk);
            }
            Mutation::Splice { from, len, to } => {
                let chunk = b[range(b.len(), from, len)].to_vec();
                overwrite(b, to, &chunk);
            }
            Mutation::Insert { at, ref bytes } => {
                let i = at.resolve(b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let r = range(b.len(), at, len);
                b.drain(r);
            }
        }
    }
}

/// Up to `len` bytes from `at`, inside `0..n`.
fn range(n: usize, at: Spot, len: usize) -> std::ops::Range<usize> {
    let start = at.resolve(n);
    start..(start + len).min(n)
}

fn overwrite(b: &mut [u8], at: Spot, bytes: &[u8]) {
    let r = range(b.len(), at, bytes.len());
    let n = r.len();
    b[r].copy_from_slice(&bytes[..n]);
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        any::<Index>().prop_map(Spot::Head),
        any::<Index>().prop_map(Spot::Tail),
        any::<Index>().prop_map(Spot::Anywhere),
    ]
}

/// Values that break counts, lengths, type ids and offsets.
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 62),
        0u64..64,
        any::<u64>(),
    ]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u32::MAX),
        Just(1 << 31),
        0u32..64,
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (spot(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        3 => (spot(), extreme_u32()).prop_map(|(at, value)| Mutation::Set32 { at, value }),
        3 => (spot(), extreme_u64()).prop_map(|(at, value)| Mutation::Set64 { at, value }),
        1 => spot().prop_map(|at| Mutation::Truncate { at }),
        1 => (spot(), 1usize..256, spot())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        1 => (spot(), 1usize..256, spot())
            .prop_map(|(from, len, to)| Mutation::Splice { from, len, to }),
        1 => (spot(), vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (spot(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        // Failures are to become named cases in `malformed_gguf.rs`, not files beside this one.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn counting_allocator_is_installed() {
    assert!(counting_is_active());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_files_are_read_or_rejected_without_panics_in_bounded_memory(
        base in any::<Index>(),
        mutations in vec(mutation(), 1..=6),
    ) {
        let bases = bases();
        let mut bytes = bases[base.index(bases.len())].clone();
        for m in &mutations {
            m.apply(&mut bytes);
        }
        let (result, peak) = read_measured(&bytes);
        let bound = read_memory_bound(bytes.len());
        prop_assert!(
            peak <= bound,
            "{peak} bytes of heap for a {}-byte file (bound {bound})",
            bytes.len()
        );
        match result {
            Ok(file) => {
                for t in &file.tensors {
                    prop_assert!(file.data_range(t).end <= bytes.len() as u64);
                    prop_assert_eq!(t.row_len() * t.n_rows(), t.n_elements);
                }
            }
            Err(Error::Gguf(e)) => prop_assert!(!e.to_string().is_empty()),
            Err(other) => prop_assert!(false, "not a GGUF error: {other}"),
        }
    }
}
