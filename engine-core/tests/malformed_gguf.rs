//! Malformed GGUF files, one crafted file per case. Each must be rejected with its own `GgufError`
//! (compared field by field), without a panic, and within `read_memory_bound` of heap.
//!
//! Most cases corrupt or cut `base()`, a small valid file built field by field that records where
//! each field starts; the rest build a minimal file around the one field under test.

use engine_core::gguf::testing::{
    counting_is_active, read_measured, read_memory_bound, sample_file, CountingAlloc,
};
use engine_core::gguf::{GgufError, Section, ValueType};
use engine_core::quant::GgmlType;
use engine_core::Error;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Little-endian GGUF bytes, written field by field.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    /// Magic, version and the two counts.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = Self::default();
        b.raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        b
    }

    /// Where the next field starts.
    fn at(&self) -> u64 {
        self.0.len() as u64
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A GGUF string: u64 length, then the bytes.
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }

    /// A metadata key and the type id of its value; the value comes next.
    fn key(&mut self, key: &str, ty: ValueType) -> &mut Self {
        self.str(key).u32(ty as u32)
    }

    /// An array header: element type and count; the elements come next.
    fn array(&mut self, elem: ValueType, len: u64) -> &mut Self {
        self.u32(elem as u32).u64(len)
    }

    /// A tensor info with a raw type id.
    fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }

    /// Zero padding up to a multiple of `alignment`.
    fn pad(&mut self, alignment: u64) -> &mut Self {
        let len = self.at().div_ceil(alignment) * alignment;
        self.0.resize(len as usize, 0);
        self
    }

    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }

    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

const F32: u32 = GgmlType::F32 as u32;
const Q8_0: u32 = GgmlType::Q8_0 as u32;
const ARCH_KEY: &str = "general.architecture";
const TENSOR_A: &str = "token_embd.weight";

/// A small valid file: five metadata keys (a string, a scalar, an f32 array, a string array and
/// a nested array) and two tensors, with the offset of every field a case cuts in.
struct Base {
    bytes: Vec<u8>,
    key: u64,
    value_type: u64,
    string_text: u64,
    scalar: u64,
    f32_body: u64,
    string_elem_text: u64,
    inner_body: u64,
    tensor_name: u64,
    tensor_dims: u64,
    tensor_type: u64,
    tensor_offset: u64,
    infos_end: u64,
    data: u64,
}

fn base() -> Base {
    let mut b = Bytes::header(3, 2, 5);
    let key = b.at();
    b.str(ARCH_KEY);
    let value_type = b.at();
    b.u32(ValueType::String as u32);
    let string_text = b.at() + 8;
    b.str("llama");
    b.key("llama.context_length", ValueType::U32);
    let scalar = b.at();
    b.u32(2048);
    b.key("tokenizer.ggml.scores", ValueType::Array)
        .array(ValueType::F32, 3);
    let f32_body = b.at();
    for x in [0.5f32, -1.0, 2.0] {
        b.raw(&x.to_le_bytes());
    }
    b.key("tokenizer.ggml.tokens", ValueType::Array)
        .array(ValueType::String, 3)
        .str("a");
    let string_elem_text = b.at() + 8;
    b.str("bc").str("def");
    b.key("nested", ValueType::Array)
        .array(ValueType::Array, 2)
        .array(ValueType::I32, 2);
    let inner_body = b.at();
    b.u32(1).u32(2).array(ValueType::I32, 1).u32(3);

    let tensor_name = b.at();
    b.str(TENSOR_A).u32(2);
    let tensor_dims = b.at();
    b.u64(4).u64(2);
    let tensor_type = b.at();
    b.u32(F32);
    let tensor_offset = b.at();
    b.u64(0);
    b.tensor("output.weight", &[32], Q8_0, 32);
    let infos_end = b.at();
    b.pad(32);
    let data = b.at();
    b.zeros(32 + 34);
    Base {
        bytes: b.done(),
        key,
        value_type,
        string_text,
        scalar,
        f32_body,
        string_elem_text,
        inner_body,
        tensor_name,
        tensor_dims,
        tensor_type,
        tensor_offset,
        infos_end,
        data,
    }
}

/// The first `at` bytes of `bytes`.
fn cut(bytes: &[u8], at: u64) -> Vec<u8> {
    bytes[..at as usize].to_vec()
}

/// Reads `bytes`, checking that the reader neither panics (the test would fail) nor exceeds the
/// memory bound, and returns the result.
fn read(bytes: &[u8]) -> engine_core::Result<engine_core::gguf::GgufFile> {
    assert!(counting_is_active(), "CountingAlloc is not installed");
    let (result, peak) = read_measured(bytes);
    let bound = read_memory_bound(bytes.len());
    assert!(
        peak <= bound,
        "GgufFile::read took {peak} bytes of heap for a {}-byte file (bound {bound})",
        bytes.len()
    );
    result
}

/// Asserts that `bytes` is rejected with exactly `expected`.
fn rejects(bytes: &[u8], expected: GgufError) {
    match read(bytes) {
        Err(Error::Gguf(err)) => {
            assert_eq!(err, expected);
            assert!(!err.to_string().is_empty());
        }
        Err(other) => panic!("expected {expected:?}, got a non-GGUF error: {other}"),
        Ok(_) => panic!("expected {expected:?}, but the file was accepted"),
    }
}

/// Asserts that `bytes` is rejected as cut short in `section`.
fn rejects_truncated(bytes: &[u8], section: Section, offset: u64, needed: u64) {
    let file_len = bytes.len() as u64;
    rejects(
        bytes,
        GgufError::Truncated {
            section,
            offset,
            needed,
            file_len,
        },
    );
}

/// A file with no metadata and one tensor `t`, followed by `data_len` bytes of data.
fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    Bytes::header(3, 1, 0)
        .tensor("t", dims, type_id, offset)
        .pad(32)
        .zeros(data_len)
        .done()
}

/// A file whose only metadata is `general.alignment`, written by `value`, and one 32-byte F32
/// tensor at `offset`.
fn with_alignment(ty: ValueType, value: impl FnOnce(&mut Bytes), offset: u64) -> Vec<u8> {
    let mut b = Bytes::header(3, 1, 1);
    b.key("general.alignment", ty);
    value(&mut b);
    b.tensor("t", &[8], F32, offset).pad(64).zeros(128).done()
}

const HUGE: u64 = 1 << 60;

// ---------------------------------------------------------------------------------------------
// The valid bases themselves

#[test]
fn the_bases_are_valid() {
    let base = base();
    let file = read(&base.bytes).expect("the hand-built base parses");
    assert_eq!((file.metadata.len(), file.tensors.len()), (5, 2));
    assert_eq!(file.data_offset, base.data);
    assert!(
        base.data > base.infos_end,
        "the base needs padding before its data"
    );

    let sample = sample_file().unwrap();
    let file = read(&sample).expect("the writer's sample file parses");
    assert_eq!(file.tensors.len(), 5);
}

// ---------------------------------------------------------------------------------------------
// Header: truncation, magic, version

#[test]
fn empty_file() {
    rejects(&[], GgufError::EmptyFile);
}

#[test]
fn truncated_inside_the_magic() {
    rejects_truncated(b"GG", Section::Header, 0, 4);
}

#[test]
fn truncated_inside_the_version() {
    rejects_truncated(&cut(&base().bytes, 6), Section::Header, 4, 4);
}

#[test]
fn truncated_inside_the_tensor_count() {
    rejects_truncated(&cut(&base().bytes, 12), Section::Header, 8, 8);
}

#[test]
fn truncated_inside_the_metadata_count() {
    rejects_truncated(&cut(&base().bytes, 23), Section::Header, 16, 8);
}

#[test]
fn bad_magic() {
    let mut bytes = base().bytes;
    bytes[..4].copy_from_slice(b"GGML");
    rejects(&bytes, GgufError::BadMagic(*b"GGML"));
}

#[test]
fn version_1() {
    rejects(
        &Bytes::header(1, 0, 0).done(),
        GgufError::UnsupportedVersion(1),
    );
}

#[test]
fn version_4() {
    rejects(
        &Bytes::header(4, 0, 0).done(),
        GgufError::UnsupportedVersion(4),
    );
}

#[test]
fn big_endian_version() {
    let mut bytes = base().bytes;
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    rejects(&bytes, GgufError::BigEndian { version: 3 });
}

#[test]
fn huge_tensor_count() {
    rejects(
        &Bytes::header(3, HUGE, 0).done(),
        GgufError::CountTooLarge {
            what: "tensor",
            count: HUGE,
            file_len: 24,
        },
    );
}

#[test]
fn huge_metadata_count() {
    rejects(
        &Bytes::header(3, 0, HUGE).done(),
        GgufError::CountTooLarge {
            what: "metadata",
            count: HUGE,
            file_len: 24,
        },
    );
}

#[test]
fn modest_metadata_count_in_a_short_file_is_truncation() {
    // 1000 entries cannot fit in what is left, but a longer file could hold them: the file was
    // cut short, and the error says where it ends.
    let bytes = Bytes::header(3, 0, 1000)
        .key("a", ValueType::U8)
        .raw(&[1])
        .done();
    rejects_truncated(&bytes, Section::MetadataKey, bytes.len() as u64, 8);
}

// ---------------------------------------------------------------------------------------------
// Metadata keys and values

#[test]
fn truncated_inside_a_key_length() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.key + 3),
        Section::MetadataKey,
        base.key,
        8,
    );
}

#[test]
fn truncated_inside_a_key() {
    let base = base();
    let text = base.key + 8;
    rejects_truncated(
        &cut(&base.bytes, text + 5),
        Section::MetadataKey,
        text,
        ARCH_KEY.len() as u64,
    );
}

#[test]
fn truncated_inside_a_value_type() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.value_type + 2),
        Section::MetadataValue,
        base.value_type,
        4,
    );
}

#[test]
fn truncated_inside_a_string_value() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.string_text + 2),
        Section::MetadataValue,
        base.string_text,
        5,
    );
}

#[test]
fn truncated_inside_a_scalar_value() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.scalar + 1),
        Section::MetadataValue,
        base.scalar,
        4,
    );
}

#[test]
fn truncated_inside_an_array_body() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.f32_body + 5),
        Section::MetadataValue,
        base.f32_body,
        12,
    );
}

#[test]
fn truncated_inside_a_string_array() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.string_elem_text + 1),
        Section::MetadataValue,
        base.string_elem_text,
        2,
    );
}

#[test]
fn truncated_inside_a_nested_array() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.inner_body + 6),
        Section::MetadataValue,
        base.inner_body,
        8,
    );
}

#[test]
fn huge_key_length() {
    let bytes = Bytes::header(3, 0, 1).u64(HUGE).raw(b"abc").done();
    rejects(
        &bytes,
        GgufError::StringTooLong {
            section: Section::MetadataKey,
            len: HUGE,
            offset: 24,
            remaining: 3,
        },
    );
}

#[test]
fn huge_string_value_length() {
    let mut b = Bytes::header(3, 0, 1);
    b.key("k", ValueType::String);
    let at = b.at();
    let bytes = b.u64(HUGE).raw(b"abc").done();
    rejects(
        &bytes,
        GgufError::StringTooLong {
            section: Section::MetadataValue,
            len: HUGE,
            offset: at,
            remaining: 3,
        },
    );
}

#[test]
fn huge_array_length() {
    let mut b = Bytes::header(3, 0, 1);
    b.key("k", ValueType::Array);
    let at = b.at();
    let bytes = b.array(ValueType::U8, HUGE).raw(&[1, 2, 3]).done();
    rejects(
        &bytes,
        GgufError::ArrayTooLong {
            len: HUGE,
            elem: "UINT8",
            offset: at,
            remaining: 3,
        },
    );
}

#[test]
fn huge_string_array_length() {
    // 2^40 strings of at least 8 bytes each: far past the plausible, although the count alone
    // would fit a `usize`.
    let mut b = Bytes::header(3, 0, 1);
    b.key("tokenizer.ggml.tokens", ValueType::Array);
    let at = b.at();
    let bytes = b.array(ValueType::String, 1 << 40).str("a").done();
    rejects(
        &bytes,
        GgufError::ArrayTooLong {
            len: 1 << 40,
            elem: "STRING",
            offset: at,
            remaining: 9,
        },
    );
}

#[test]
fn huge_nested_array_length() {
    let mut b = Bytes::header(3, 0, 1);
    b.key("k", ValueType::Array).array(ValueType::Array, 2);
    let inner = b.at();
    let bytes = b.array(ValueType::U64, HUGE).done();
    rejects(
        &bytes,
        GgufError::ArrayTooLong {
            len: HUGE,
            elem: "UINT64",
            offset: inner,
            remaining: 0,
        },
    );
}

#[test]
fn arrays_nested_too_deep() {
    // Eight levels are accepted; the ninth is refused where its header starts.
    let mut b = Bytes::header(3, 0, 1);
    b.key("k", ValueType::Array);
    for _ in 0..8 {
        b.array(ValueType::Array, 1);
    }
    let ninth = b.at();
    let bytes = b.array(ValueType::U8, 0).done();
    rejects(
        &bytes,
        GgufError::NestingTooDeep {
            max: 8,
            offset: ninth,
        },
    );
}

#[test]
fn unknown_value_type() {
    let base = base();
    let mut bytes = base.bytes;
    let at = base.value_type as usize;
    bytes[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    rejects(
        &bytes,
        GgufError::UnknownValueType {
            type_id: 13,
            offset: base.value_type,
        },
    );
}

#[test]
fn unknown_array_element_type() {
    let mut b = Bytes::header(3, 0, 1);
    b.key("k", ValueType::Array);
    let at = b.at();
    let bytes = b.u32(99).u64(0).done();
    rejects(
        &bytes,
        GgufError::UnknownValueType {
            type_id: 99,
            offset: at,
        },
    );
}

#[test]
fn invalid_utf8_in_a_key() {
    let base = base();
    let mut bytes = base.bytes;
    bytes[base.key as usize + 8] = 0xff;
    rejects(
        &bytes,
        GgufError::InvalidUtf8 {
            section: Section::MetadataKey,
            offset: base.key,
        },
    );
}

#[test]
fn invalid_utf8_in_a_string_array() {
    let base = base();
    let mut bytes = base.bytes;
    bytes[base.string_elem_text as usize] = 0xc3; // a lead byte followed by ASCII
    rejects(
        &bytes,
        GgufError::InvalidUtf8 {
            section: Section::MetadataValue,
            offset: base.string_elem_text - 8,
        },
    );
}

#[test]
fn duplicate_key() {
    let bytes = Bytes::header(3, 0, 2)
        .key("k", ValueType::U8)
        .raw(&[1])
        .key("k", ValueType::U8)
        .raw(&[2])
        .done();
    rejects(&bytes, GgufError::DuplicateKey("k".into()));
}

#[test]
fn alignment_zero() {
    let bytes = with_alignment(
        ValueType::U32,
        |b| {
            b.u32(0);
        },
        0,
    );
    rejects(&bytes, GgufError::BadAlignment(0));
}

#[test]
fn alignment_not_a_power_of_two() {
    let bytes = with_alignment(
        ValueType::U32,
        |b| {
            b.u32(48);
        },
        0,
    );
    rejects(&bytes, GgufError::BadAlignment(48));
}

#[test]
fn alignment_of_the_wrong_type() {
    let bytes = with_alignment(
        ValueType::String,
        |b| {
            b.str("32");
        },
        0,
    );
    rejects(
        &bytes,
        GgufError::WrongValueType {
            key: "general.alignment".into(),
            expected: "unsigned integer",
            found: "STRING",
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Tensor infos

#[test]
fn truncated_inside_a_tensor_name() {
    let base = base();
    let text = base.tensor_name + 8;
    rejects_truncated(
        &cut(&base.bytes, text + 3),
        Section::TensorInfo,
        text,
        TENSOR_A.len() as u64,
    );
}

#[test]
fn truncated_inside_tensor_dims() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.tensor_dims + 10),
        Section::TensorInfo,
        base.tensor_dims + 8,
        8,
    );
}

#[test]
fn truncated_inside_a_tensor_type() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.tensor_type + 1),
        Section::TensorInfo,
        base.tensor_type,
        4,
    );
}

#[test]
fn truncated_inside_a_tensor_offset() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.tensor_offset + 7),
        Section::TensorInfo,
        base.tensor_offset,
        8,
    );
}

#[test]
fn huge_tensor_name_length() {
    let bytes = Bytes::header(3, 1, 0).u64(HUGE).zeros(30).done();
    rejects(
        &bytes,
        GgufError::StringTooLong {
            section: Section::TensorInfo,
            len: HUGE,
            offset: 24,
            remaining: 30,
        },
    );
}

#[test]
fn invalid_utf8_in_a_tensor_name() {
    let base = base();
    let mut bytes = base.bytes;
    bytes[base.tensor_name as usize + 9] = 0x80; // a lone continuation byte
    rejects(
        &bytes,
        GgufError::InvalidUtf8 {
            section: Section::TensorInfo,
            offset: base.tensor_name,
        },
    );
}

#[test]
fn duplicate_tensor_name() {
    let bytes = Bytes::header(3, 2, 0)
        .tensor("t", &[8], F32, 0)
        .tensor("t", &[8], F32, 32)
        .pad(32)
        .zeros(64)
        .done();
    rejects(&bytes, GgufError::DuplicateTensor("t".into()));
}

#[test]
fn too_many_dims() {
    rejects(
        &one_tensor(&[1, 1, 1, 1, 1], F32, 0, 32),
        GgufError::TooManyDims {
            tensor: "t".into(),
            n_dims: 5,
            max: 4,
        },
    );
}

#[test]
fn huge_dim_count() {
    // Refused before a single dim is read or reserved for.
    let bytes = Bytes::header(3, 1, 0)
        .str("t")
        .u32(u32::MAX)
        .zeros(64)
        .done();
    rejects(
        &bytes,
        GgufError::TooManyDims {
            tensor: "t".into(),
            n_dims: u32::MAX,
            max: 4,
        },
    );
}

#[test]
fn dimension_product_overflow() {
    let dims = [1 << 32, 1 << 32];
    rejects(
        &one_tensor(&dims, F32, 0, 32),
        GgufError::DimOverflow {
            tensor: "t".into(),
            dims: dims.to_vec(),
        },
    );
}

#[test]
fn zero_dimension_does_not_hide_an_overflow() {
    // Zero elements, but the row count 2^80 would overflow wherever the shape is used.
    let dims = [0, 1 << 40, 1 << 40];
    rejects(
        &one_tensor(&dims, F32, 0, 32),
        GgufError::DimOverflow {
            tensor: "t".into(),
            dims: dims.to_vec(),
        },
    );
}

#[test]
fn byte_size_overflow() {
    rejects(
        &one_tensor(&[1 << 62], F32, 0, 32),
        GgufError::ByteSizeOverflow {
            tensor: "t".into(),
            ty: "F32".into(),
            n_elements: 1 << 62,
        },
    );
}

fn rejects_tensor_type(type_id: u32) {
    rejects(
        &one_tensor(&[32], type_id, 0, 128),
        GgufError::UnknownTensorType {
            tensor: "t".into(),
            type_id,
        },
    );
}

#[test]
fn unknown_tensor_type_4_removed_q4_2() {
    rejects_tensor_type(4);
}

#[test]
fn unknown_tensor_type_36_removed_iq4_nl_4x4() {
    rejects_tensor_type(36);
}

#[test]
fn unknown_tensor_type_999() {
    rejects_tensor_type(999);
}

#[test]
fn row_not_a_multiple_of_the_block_size() {
    rejects(
        &one_tensor(&[33, 2], GgmlType::Q4_0 as u32, 0, 64),
        GgufError::RowNotBlockAligned {
            tensor: "t".into(),
            ty: "Q4_0".into(),
            ne0: 33,
            block: 32,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Tensor data: alignment, bounds, overlap, truncation

#[test]
fn tensor_offset_misaligned() {
    rejects(
        &one_tensor(&[8], F32, 8, 64),
        GgufError::TensorMisaligned {
            tensor: "t".into(),
            offset: 8,
            alignment: 32,
        },
    );
}

#[test]
fn tensor_offset_misaligned_for_a_custom_alignment() {
    rejects(
        &with_alignment(
            ValueType::U32,
            |b| {
                b.u32(64);
            },
            32,
        ),
        GgufError::TensorMisaligned {
            tensor: "t".into(),
            offset: 32,
            alignment: 64,
        },
    );
}

#[test]
fn tensor_offset_outside_the_file() {
    rejects(
        &one_tensor(&[8], F32, 1 << 40, 64),
        GgufError::TensorOutOfBounds {
            tensor: "t".into(),
            start: 1 << 40,
            end: (1 << 40) + 32,
            data_len: 64,
        },
    );
}

#[test]
fn tensor_end_overflows_u64() {
    let offset = u64::MAX - 31; // aligned to 32
    rejects(
        &one_tensor(&[16], F32, offset, 64),
        GgufError::TensorOutOfBounds {
            tensor: "t".into(),
            start: offset,
            end: u64::MAX,
            data_len: 64,
        },
    );
}

#[test]
fn tensors_overlapping() {
    let bytes = Bytes::header(3, 2, 0)
        .tensor("big", &[16], F32, 0)
        .tensor("small", &[8], F32, 32)
        .pad(32)
        .zeros(96)
        .done();
    rejects(
        &bytes,
        GgufError::TensorOverlap {
            first: "big".into(),
            second: "small".into(),
        },
    );
}

#[test]
fn tensor_running_past_the_end_of_the_file() {
    let bytes = one_tensor(&[256], F32, 0, 100);
    let data = bytes.len() as u64 - 100;
    rejects_truncated(&bytes, Section::TensorData, data, 1024);
}

#[test]
fn file_ends_before_the_data_section() {
    let base = base();
    assert!(
        base.data > base.infos_end,
        "the cut must fall in the padding"
    );
    rejects_truncated(
        &cut(&base.bytes, base.data - 1),
        Section::TensorData,
        base.data,
        32,
    );
}

#[test]
fn empty_tensor_in_a_file_that_ends_before_the_data_section() {
    // Found by cargo-fuzz: no data is missing, but the tensor's range starts past the end.
    let bytes = Bytes::header(3, 1, 0).tensor("t", &[0], F32, 0).done();
    let data = (bytes.len() as u64).next_multiple_of(32);
    assert!(data > bytes.len() as u64);
    rejects_truncated(&bytes, Section::TensorData, data, 0);
}

#[test]
fn truncated_inside_tensor_data() {
    let base = base();
    rejects_truncated(
        &cut(&base.bytes, base.data + 40),
        Section::TensorData,
        base.data + 32,
        34,
    );
}

// ---------------------------------------------------------------------------------------------
// Every cut of a real writer output

#[test]
fn every_prefix_of_the_sample_file_is_truncated_until_the_last_tensor_ends() {
    let bytes = sample_file().unwrap();
    let file = read(&bytes).unwrap();
    let last_end = file
        .tensors
        .iter()
        .map(|t| file.data_range(t).end)
        .max()
        .unwrap();
    for len in 1..bytes.len() {
        match read(&bytes[..len]) {
            // Only the padding after the last tensor may go missing.
            Ok(_) => assert!(len as u64 >= last_end, "prefix of {len} bytes accepted"),
            Err(Error::Gguf(GgufError::Truncated { file_len, .. })) => {
                assert_eq!(file_len, len as u64);
                assert!((len as u64) < last_end);
            }
            Err(other) => panic!("prefix of {len} bytes: expected Truncated, got {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory on valid but dense headers

#[test]
fn dense_headers_stay_within_the_memory_bound() {
    // Just past the points where vectors and hash tables grow, parsed structures weigh most per
    // file byte: about 12 times for entries with one-byte values.
    for n in [28_673u64, 32_769] {
        let mut kvs = Bytes::header(3, 0, n);
        for i in 0..n {
            kvs.key(&format!("{i:x}"), ValueType::U8).raw(&[1]);
        }
        let mut strings = Bytes::header(3, 0, 1);
        strings
            .key("k", ValueType::Array)
            .array(ValueType::String, n);
        for _ in 0..n {
            strings.str("");
        }
        let mut arrays = Bytes::header(3, 0, 1);
        arrays.key("k", ValueType::Array).array(ValueType::Array, n);
        for _ in 0..n {
            arrays.array(ValueType::U8, 0);
        }
        let mut tensors = Bytes::header(3, n, 0);
        for i in 0..n {
            tensors.tensor(&format!("{i:x}"), &[0], F32, 0);
        }
        tensors.pad(32);
        for mut file in [kvs, strings, arrays, tensors] {
            read(&file.done()).expect("a dense but valid file");
        }
    }
}
