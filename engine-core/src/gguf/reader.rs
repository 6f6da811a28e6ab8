//! The GGUF reader. Nothing read from the file is trusted before it is checked against the file's
//! size: a count or length larger than any real header fails before anything is allocated for
//! it, and vectors are reserved only up to a small cap, so memory follows the bytes actually
//! read, not the counts claimed.

use super::value::{Array, Metadata, Value, ValueType};
use super::{GgufError, Section, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
use crate::quant::GgmlType;
use crate::source::ByteSource;
use crate::Result;
use std::collections::HashMap;
use std::ops::Range;

/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of metadata arrays accepted; real files use at most one level.
const MAX_NESTING: usize = 8;
/// Bytes read from the source at a time while parsing the header.
const READ_CHUNK: usize = 256 * 1024;
/// Fewest bytes a tensor info takes: empty name (8), n_dims (4), type (4), offset (8).
const MIN_TENSOR_INFO: u64 = 24;
/// Fewest bytes a key/value pair takes: empty key (8), type (4), a one-byte value.
const MIN_KV: u64 = 13;
/// A string, array or directory whose declared size runs past the end of the file is reported as
/// `Truncated` up to this many bytes (a longer file could hold it), and as corrupt above it
/// (`StringTooLong`, `ArrayTooLong`, `CountTooLarge`): real headers stay far below it, a
/// 256k-token vocabulary takes a few MiB.
const MAX_PLAUSIBLE_BYTES: u64 = 1 << 30;
/// Most bytes reserved ahead for a declared element count; past it, vectors grow as elements
/// are read.
const MAX_RESERVE_BYTES: usize = 64 * 1024;

/// Capacity to reserve for `count` declared elements of `T`.
fn reserve_for<T>(count: u64) -> usize {
    let cap = MAX_RESERVE_BYTES / std::mem::size_of::<T>().max(1);
    usize::try_from(count).map_or(cap, |n| n.min(cap))
}

/// One entry of the tensor directory, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them: `dims[0]` is the row length (ggml's ne0).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Elements per row (ne0); 1 for a scalar.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of all dims but the first). The reader guarantees that the product
    /// of the non-zero dims fits in a `u64`, so this cannot overflow for a tensor it returned.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// A parsed GGUF file: metadata, tensor directory and the layout of the data section.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset where the data section starts.
    pub data_offset: u64,
    pub file_len: u64,
    index: HashMap<String, usize>,
}

impl GgufFile {
    /// Parses and validates the header and tensor directory of `src`.
    pub fn read<S: ByteSource + ?Sized>(src: &S) -> Result<Self> {
        if src.is_empty() {
            return Err(GgufError::EmptyFile.into());
        }
        let mut r = HeaderReader::new(src);
        let magic: [u8; 4] = r.array(Section::Header)?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic).into());
        }
        let version = r.u32(Section::Header)?;
        if version != 2 && version != 3 {
            // Big-endian files keep the magic (it is bytes) but swap every number.
            let swapped = version.swap_bytes();
            if (1..=3).contains(&swapped) {
                return Err(GgufError::BigEndian { version: swapped }.into());
            }
            return Err(GgufError::UnsupportedVersion(version).into());
        }
        let n_tensors = r.u64(Section::Header)?;
        let n_kv = r.u64(Section::Header)?;
        r.check_count("tensor", n_tensors, MIN_TENSOR_INFO)?;
        r.check_count("metadata", n_kv, MIN_KV)?;

        let mut metadata = Metadata::new();
        for _ in 0..n_kv {
            let key = r.string(Section::MetadataKey)?;
            let type_id = r.u32(Section::MetadataValue)?;
            let value = r.value(type_id, 0)?;
            metadata.insert(key, value)?;
        }
        let alignment = alignment_of(&metadata)?;

        let mut raw = Vec::with_capacity(reserve_for::<RawTensorInfo>(n_tensors));
        for _ in 0..n_tensors {
            raw.push(r.tensor_info()?);
        }
        let data_offset = r.pos.div_ceil(alignment) * alignment;
        let file_len = src.len();
        let tensors = validate_tensors(raw, alignment, data_offset, file_len)?;
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_len,
            index,
        })
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// Absolute byte range of a tensor's data in the file.
    pub fn data_range(&self, t: &TensorInfo) -> Range<u64> {
        let start = self.data_offset + t.offset;
        start..start + t.n_bytes
    }

    /// The architecture named by `general.architecture`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        Metadata::require(
            "general.architecture",
            self.metadata.get_str("general.architecture"),
        )
    }

    /// Reads a tensor's raw (still quantized) bytes.
    pub fn read_tensor_data<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        t: &TensorInfo,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![
            0u8;
            usize::try_from(t.n_bytes).map_err(|_| {
                crate::Error::Config(format!(
                    "tensor '{}' is too large for this platform",
                    t.name
                ))
            })?
        ];
        src.read_at(self.data_range(t).start, &mut buf)?;
        Ok(buf)
    }
}

fn alignment_of(metadata: &Metadata) -> Result<u64, GgufError> {
    let Some(value) = metadata.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let alignment = value.as_u64().ok_or_else(|| GgufError::WrongValueType {
        key: ALIGNMENT_KEY.to_string(),
        expected: "unsigned integer",
        found: value.value_type().name(),
    })?;
    if alignment == 0 || !alignment.is_power_of_two() || alignment > 1 << 30 {
        return Err(GgufError::BadAlignment(alignment));
    }
    Ok(alignment)
}

/// Element and byte counts of a tensor, after checking its shape against its type. Shared with the
/// writer so it never writes a tensor the reader would reject.
pub(super) fn tensor_extent(
    name: &str,
    dims: &[u64],
    ty: GgmlType,
) -> Result<(u64, u64), GgufError> {
    // Zero dims count as one here, so an empty dim cannot hide an overflowing product of the
    // others (which `n_rows` and every shape computation downstream would hit).
    let nonzero_product = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .ok_or_else(|| GgufError::DimOverflow {
            tensor: name.to_string(),
            dims: dims.to_vec(),
        })?;
    let n_elements = if dims.contains(&0) {
        0
    } else {
        nonzero_product
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    let block = ty.block_size();
    if ne0 % block as u64 != 0 {
        return Err(GgufError::RowNotBlockAligned {
            tensor: name.to_string(),
            ty: ty.to_string(),
            ne0,
            block,
        });
    }
    let n_bytes = ty
        .bytes_for(n_elements)
        .ok_or_else(|| GgufError::ByteSizeOverflow {
            tensor: name.to_string(),
            ty: ty.to_string(),
            n_elements,
        })?;
    Ok((n_elements, n_bytes))
}

/// A tensor info as read, before its type and extent are checked.
struct RawTensorInfo {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
}

fn validate_tensors(
    raw: Vec<RawTensorInfo>,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
    let mut names = HashMap::with_capacity(raw.len());
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        if names.insert(t.name.clone(), ()).is_some() {
            return Err(GgufError::DuplicateTensor(t.name));
        }
        let ggml_type =
            GgmlType::from_id(t.type_id).ok_or_else(|| GgufError::UnknownTensorType {
                tensor: t.name.clone(),
                type_id: t.type_id,
            })?;
        let (n_elements, n_bytes) = tensor_extent(&t.name, &t.dims, ggml_type)?;
        if t.offset % alignment != 0 {
            return Err(GgufError::TensorMisaligned {
                tensor: t.name,
                offset: t.offset,
                alignment,
            });
        }
        tensors.push(TensorInfo {
            name: t.name,
            dims: t.dims,
            ggml_type,
            offset: t.offset,
            n_elements,
            n_bytes,
        });
    }
    check_layout(&tensors, alignment, data_offset, file_len)?;
    Ok(tensors)
}

/// Checks, in offset order, that every tensor lies inside the data section and that no two
/// overlap. A tensor running past the end of the file is `Truncated` when it starts inside the
/// file or right where the tensors before it end (the layout is whole, the file was cut short),
/// and `TensorOutOfBounds` when it starts beyond both (its offset is corrupt).
fn check_layout(
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    let data_len = file_len.saturating_sub(data_offset);
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    // At equal offsets, tensors with data first: they name the problem better.
    order.sort_by_key(|t| (t.offset, t.n_bytes == 0));
    // The aligned end of the tensors so far, and the tensor with data that ends last.
    let mut packed_end = 0u64;
    let mut furthest: Option<(&TensorInfo, u64)> = None;
    for t in order {
        // Checked in absolute terms too: when the file ends before the data section starts,
        // even an empty tensor's range lies past its end.
        let end = t.offset.checked_add(t.n_bytes);
        let Some(abs_end) = end.and_then(|e| e.checked_add(data_offset)) else {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                start: t.offset,
                end: end.unwrap_or(u64::MAX),
                data_len,
            });
        };
        let end = abs_end - data_offset;
        if abs_end > file_len {
            if t.offset <= data_len.max(packed_end) {
                return Err(GgufError::Truncated {
                    section: Section::TensorData,
                    offset: data_offset + t.offset,
                    needed: t.n_bytes,
                    file_len,
                });
            }
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                start: t.offset,
                end,
                data_len,
            });
        }
        if t.n_bytes == 0 {
            continue;
        }
        if let Some((prev, prev_end)) = furthest {
            if prev_end > t.offset {
                return Err(GgufError::TensorOverlap {
                    first: prev.name.clone(),
                    second: t.name.clone(),
                });
            }
        }
        if furthest.is_none_or(|(_, prev_end)| end > prev_end) {
            furthest = Some((t, end));
        }
        packed_end = packed_end.max(end.checked_next_multiple_of(alignment).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Sequential little-endian reads over a `ByteSource`, through a bounded window.
struct HeaderReader<'a, S: ?Sized> {
    src: &'a S,
    len: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a, S: ByteSource + ?Sized> HeaderReader<'a, S> {
    fn new(src: &'a S) -> Self {
        Self {
            src,
            len: src.len(),
            pos: 0,
            window: Vec::new(),
            window_start: 0,
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails with `Truncated` unless `n` more bytes exist.
    fn need(&self, n: u64, section: Section) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                section,
                offset: self.pos,
                needed: n,
                file_len: self.len,
            });
        }
        Ok(())
    }

    /// Whether a structure declared to take at least `needed` bytes from here is corrupt rather
    /// than cut short: it runs past the end of the file and is larger than any real header holds.
    fn implausible(&self, needed: u64) -> bool {
        needed > self.remaining() && needed > MAX_PLAUSIBLE_BYTES
    }

    /// Fails with `CountTooLarge` when `count` items of at least `min_size` bytes are implausible.
    /// Plausible counts that the file cannot hold fail as `Truncated` where the file ends.
    fn check_count(&self, what: &'static str, count: u64, min_size: u64) -> Result<(), GgufError> {
        if self.implausible(count.saturating_mul(min_size)) {
            return Err(GgufError::CountTooLarge {
                what,
                count,
                file_len: self.len,
            });
        }
        Ok(())
    }

    fn fill(&mut self, out: &mut [u8], section: Section) -> Result<()> {
        self.need(out.len() as u64, section)?;
        let mut done = 0;
        while done < out.len() {
            let window_end = self.window_start + self.window.len() as u64;
            if self.pos < self.window_start || self.pos >= window_end {
                let n = (READ_CHUNK as u64).min(self.remaining()) as usize;
                self.window.resize(n, 0);
                self.src.read_at(self.pos, &mut self.window)?;
                self.window_start = self.pos;
                continue;
            }
            let at = (self.pos - self.window_start) as usize;
            let n = (self.window.len() - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.window[at..at + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, section: Section) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, section)?;
        Ok(b)
    }

    fn u32(&mut self, section: Section) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(section)?))
    }

    fn u64(&mut self, section: Section) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(section)?))
    }

    fn string(&mut self, section: Section) -> Result<String> {
        let at = self.pos;
        let len = self.u64(section)?;
        let too_long = GgufError::StringTooLong {
            section,
            len,
            offset: at,
            remaining: self.remaining(),
        };
        if self.implausible(len) {
            return Err(too_long.into());
        }
        self.need(len, section)?;
        // `len` is now bounded by the file size.
        let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| too_long)?];
        self.fill(&mut bytes, section)?;
        String::from_utf8(bytes)
            .map_err(|_| GgufError::InvalidUtf8 {
                section,
                offset: at,
            })
            .map_err(Into::into)
    }

    fn value(&mut self, type_id: u32, depth: usize) -> Result<Value> {
        let s = Section::MetadataValue;
        let ty = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType {
            type_id,
            offset: self.pos.saturating_sub(4),
        })?;
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(s)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(s)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(s)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(s)?)),
            ValueType::U32 => Value::U32(self.u32(s)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(s)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(s)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(s)?[0] != 0),
            ValueType::String => Value::String(self.string(s)?),
            ValueType::Array => Value::Array(self.array_value(depth + 1)?),
            ValueType::U64 => Value::U64(self.u64(s)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(s)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(s)?)),
        })
    }

    fn array_value(&mut self, depth: usize) -> Result<Array> {
        let s = Section::MetadataValue;
        let at = self.pos;
        if depth > MAX_NESTING {
            return Err(GgufError::NestingTooDeep {
                max: MAX_NESTING,
                offset: at,
            }
            .into());
        }
        let type_id = self.u32(s)?;
        let elem = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType {
            type_id,
            offset: at,
        })?;
        let len = self.u64(s)?;
        let min_bytes = len.saturating_mul(elem.min_encoded_size());
        if self.implausible(min_bytes) {
            return Err(GgufError::ArrayTooLong {
                len,
                elem: elem.name(),
                offset: at,
                remaining: self.remaining(),
            }
            .into());
        }
        if !matches!(elem, ValueType::String | ValueType::Array) {
            // Fixed-size elements: the whole body must be there.
            self.need(min_bytes, s)?;
        }
        macro_rules! numeric {
            ($variant:ident, $t:ty) => {{
                let mut v = Vec::with_capacity(reserve_for::<$t>(len));
                for _ in 0..len {
                    v.push(<$t>::from_le_bytes(self.array(s)?));
                }
                Array::$variant(v)
            }};
        }
        Ok(match elem {
            ValueType::U8 => numeric!(U8, u8),
            ValueType::I8 => numeric!(I8, i8),
            ValueType::U16 => numeric!(U16, u16),
            ValueType::I16 => numeric!(I16, i16),
            ValueType::U32 => numeric!(U32, u32),
            ValueType::I32 => numeric!(I32, i32),
            ValueType::F32 => numeric!(F32, f32),
            ValueType::U64 => numeric!(U64, u64),
            ValueType::I64 => numeric!(I64, i64),
            ValueType::F64 => numeric!(F64, f64),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(reserve_for::<bool>(len));
                for _ in 0..len {
                    v.push(self.array::<1>(s)?[0] != 0);
                }
                Array::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(reserve_for::<String>(len));
                for _ in 0..len {
                    v.push(self.string(s)?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(reserve_for::<Array>(len));
                for _ in 0..len {
                    v.push(self.array_value(depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }

    fn tensor_info(&mut self) -> Result<RawTensorInfo> {
        let s = Section::TensorInfo;
        let name = self.string(s)?;
        let n_dims = self.u32(s)?;
        if n_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims,
                max: MAX_DIMS,
            }
            .into());
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(s)?);
        }
        let type_id = self.u32(s)?;
        let offset = self.u64(s)?;
        Ok(RawTensorInfo {
            name,
            dims,
            type_id,
            offset,
        })
    }
}
