//! Every way a GGUF file can be malformed, one variant each, so callers and tests can tell them apart.
//!
//! A size that runs past the end of the file is `Truncated` when a longer file could hold it (the
//! file was cut short), and `StringTooLong`, `ArrayTooLong` or `CountTooLarge` when it claims more
//! than any real header holds (the size itself is corrupt).

use std::fmt;

/// The part of the file being read when a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Header,
    MetadataKey,
    MetadataValue,
    TensorInfo,
    TensorData,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::MetadataKey => "metadata key",
            Section::MetadataValue => "metadata value",
            Section::TensorInfo => "tensor info",
            Section::TensorData => "tensor data",
        })
    }
}

/// A structural problem in a GGUF file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    #[error("the file is empty (0 bytes): not a GGUF file")]
    EmptyFile,

    #[error("bad magic {0:02x?}: not a GGUF file")]
    BadMagic([u8; 4]),

    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),

    /// The version field reads as 2 or 3 only byte-swapped: the file was written big-endian.
    #[error("big-endian GGUF (version {version} byte-swapped) is not supported: convert the file to little-endian")]
    BigEndian { version: u32 },

    #[error("file truncated in the {section} at offset {offset}: need {needed} bytes, file has {file_len}")]
    Truncated {
        section: Section,
        offset: u64,
        needed: u64,
        file_len: u64,
    },

    #[error("{what} count {count} cannot fit in a {file_len}-byte file")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        file_len: u64,
    },

    #[error(
        "{section} string length {len} at offset {offset} exceeds the {remaining} bytes left in the file"
    )]
    StringTooLong {
        section: Section,
        len: u64,
        offset: u64,
        remaining: u64,
    },

    #[error("array of {len} {elem} values at offset {offset} exceeds the {remaining} bytes left in the file")]
    ArrayTooLong {
        len: u64,
        elem: &'static str,
        offset: u64,
        remaining: u64,
    },

    #[error("{section} string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { section: Section, offset: u64 },

    #[error("unknown metadata value type {type_id} at offset {offset}")]
    UnknownValueType { type_id: u32, offset: u64 },

    #[error("metadata arrays nested deeper than {max} levels at offset {offset}")]
    NestingTooDeep { max: usize, offset: u64 },

    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),

    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongValueType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("missing metadata key '{0}'")]
    MissingKey(String),

    #[error("general.alignment {0} is not a power of two between 1 and 2^30")]
    BadAlignment(u64),

    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),

    #[error("tensor '{tensor}' has {n_dims} dimensions (at most {max})")]
    TooManyDims {
        tensor: String,
        n_dims: u32,
        max: usize,
    },

    /// The product of the non-zero dimensions overflows a `u64`.
    #[error("tensor '{tensor}' dimensions {dims:?} overflow the element count")]
    DimOverflow { tensor: String, dims: Vec<u64> },

    #[error("tensor '{tensor}': {n_elements} {ty} elements take more than 2^64 bytes")]
    ByteSizeOverflow {
        tensor: String,
        ty: String,
        n_elements: u64,
    },

    #[error("tensor '{tensor}' has unknown type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },

    #[error(
        "tensor '{tensor}': row length {ne0} is not a multiple of the {ty} block size {block}"
    )]
    RowNotBlockAligned {
        tensor: String,
        ty: String,
        ne0: u64,
        block: usize,
    },

    #[error("tensor '{tensor}' offset {offset} is not aligned to {alignment}")]
    TensorMisaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("tensor '{tensor}' bytes {start}..{end} of the data section lie outside it ({data_len} bytes)")]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        data_len: u64,
    },

    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    TensorOverlap { first: String, second: String },
}
