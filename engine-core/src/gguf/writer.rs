//! The GGUF v3 writer. It streams: the header goes out first with every tensor's offset computed from
//! its shape and type, then tensor data is appended in directory order, so no tensor need be whole
//! in memory at once.

use super::reader::tensor_extent;
use super::value::{Array, Metadata, Value};
use super::{GgufError, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use crate::quant::GgmlType;
use crate::{Error, Result};
use std::collections::HashSet;
use std::io::Write;

/// A tensor to be written: its name, GGUF dims (row length first) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dims: &[u64], ggml_type: GgmlType) -> Self {
        Self {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type,
        }
    }

    /// Bytes of data, after checking the shape fits the type.
    pub fn n_bytes(&self) -> Result<u64, GgufError> {
        if self.dims.len() > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: self.name.clone(),
                n_dims: self.dims.len() as u32,
                max: MAX_DIMS,
            });
        }
        tensor_extent(&self.name, &self.dims, self.ggml_type).map(|(_, n_bytes)| n_bytes)
    }
}

/// Streams one GGUF file: created with the metadata and tensor directory, then fed tensor data.
pub struct GgufWriter<W: Write> {
    out: W,
    alignment: u64,
    tensors: Vec<(TensorSpec, u64)>,
    current: usize,
    current_written: u64,
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header, metadata and tensor directory; data for the first tensor comes next.
    pub fn new(mut out: W, metadata: &Metadata, tensors: Vec<TensorSpec>) -> Result<Self> {
        let alignment = match metadata.get(ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 30 => a,
                Some(a) => return Err(GgufError::BadAlignment(a).into()),
                None => {
                    return Err(GgufError::WrongValueType {
                        key: ALIGNMENT_KEY.into(),
                        expected: "unsigned integer",
                        found: v.value_type().name(),
                    }
                    .into())
                }
            },
        };
        let mut seen = HashSet::new();
        let mut sized = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for t in tensors {
            if !seen.insert(t.name.clone()) {
                return Err(GgufError::DuplicateTensor(t.name).into());
            }
            let n = t.n_bytes()?;
            sized.push((t, offset));
            offset = (offset + n).div_ceil(alignment) * alignment;
        }

        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(sized.len() as u64).to_le_bytes());
        header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata.iter() {
            encode_string(key, &mut header);
            header.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            encode_value(value, &mut header);
        }
        for (t, offset) in &sized {
            encode_string(&t.name, &mut header);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
        }
        pad_to(&mut header, alignment);
        out.write_all(&header)?;
        let mut w = Self {
            out,
            alignment,
            tensors: sized,
            current: 0,
            current_written: 0,
        };
        w.skip_empty()?;
        Ok(w)
    }

    /// The tensor whose data is expected next, if any.
    pub fn current_tensor(&self) -> Option<&TensorSpec> {
        self.tensors.get(self.current).map(|(t, _)| t)
    }

    /// Appends data to the current tensor; moves to the next one once it is complete.
    /// A chunk may not run past the end of the current tensor.
    pub fn write_tensor_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some((spec, _)) = self.tensors.get(self.current) else {
            return Err(Error::SizeMismatch {
                what: "tensor data after the last tensor".into(),
                expected: 0,
                actual: bytes.len() as u64,
            });
        };
        let total = spec.n_bytes()?;
        let left = total - self.current_written;
        if bytes.len() as u64 > left {
            return Err(Error::SizeMismatch {
                what: format!("data for tensor '{}'", spec.name),
                expected: total,
                actual: self.current_written + bytes.len() as u64,
            });
        }
        self.out.write_all(bytes)?;
        self.current_written += bytes.len() as u64;
        if self.current_written == total {
            self.end_tensor(total)?;
            self.skip_empty()?;
        }
        Ok(())
    }

    /// Checks that every tensor got all its data, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        if let Some((t, _)) = self.tensors.get(self.current) {
            return Err(Error::SizeMismatch {
                what: format!("data for tensor '{}' (file ended early)", t.name),
                expected: t.n_bytes()?,
                actual: self.current_written,
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn end_tensor(&mut self, n_bytes: u64) -> Result<()> {
        let padding = n_bytes.div_ceil(self.alignment) * self.alignment - n_bytes;
        self.out.write_all(&vec![0u8; padding as usize])?;
        self.current += 1;
        self.current_written = 0;
        Ok(())
    }

    /// Zero-sized tensors need no data call; step over them.
    fn skip_empty(&mut self) -> Result<()> {
        while let Some((t, _)) = self.tensors.get(self.current) {
            if t.n_bytes()? != 0 {
                break;
            }
            self.end_tensor(0)?;
        }
        Ok(())
    }
}

fn pad_to(buf: &mut Vec<u8>, alignment: u64) {
    let len = buf.len() as u64;
    let padded = len.div_ceil(alignment) * alignment;
    buf.resize(padded as usize, 0);
}

fn encode_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the GGUF encoding of a value (without its type id).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => encode_string(s, out),
        Value::Array(a) => encode_array(a, out),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Appends the GGUF encoding of an array: element type id, count, elements.
pub fn encode_array(a: &Array, out: &mut Vec<u8>) {
    out.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T: Copy>(v: &[T], out: &mut Vec<u8>, f: impl Fn(T, &mut Vec<u8>)) {
        for &x in v {
            f(x, out);
        }
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::U16(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::I16(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::U32(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::I32(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::F32(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::Bool(v) => each(v, out, |x, o| o.push(u8::from(x))),
        Array::String(v) => v.iter().for_each(|s| encode_string(s, out)),
        Array::Array(v) => v.iter().for_each(|inner| encode_array(inner, out)),
        Array::U64(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::I64(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
        Array::F64(v) => each(v, out, |x, o| o.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::testing::sample_metadata;
    use crate::gguf::GgufFile;
    use crate::source::MemorySource;

    #[test]
    fn every_value_type_and_tensor_survives_a_round_trip() {
        let metadata = sample_metadata();
        let specs = vec![
            TensorSpec::new("a", &[4, 2], GgmlType::F32),
            TensorSpec::new("empty", &[0], GgmlType::F32),
            TensorSpec::new("b", &[32, 3], GgmlType::Q8_0),
        ];
        let mut w = GgufWriter::new(Vec::new(), &metadata, specs).unwrap();
        w.write_tensor_data(&[1u8; 16]).unwrap();
        w.write_tensor_data(&[2u8; 16]).unwrap();
        assert_eq!(w.current_tensor().unwrap().name, "b");
        w.write_tensor_data(&[3u8; 34 * 3]).unwrap();
        assert!(w.current_tensor().is_none());
        let bytes = w.finish().unwrap();

        let file = GgufFile::read(&MemorySource::new(bytes.clone())).unwrap();
        assert_eq!(file.version, 3);
        assert_eq!(file.alignment, 64);
        assert_eq!(file.metadata, metadata);
        assert_eq!(file.data_offset % 64, 0);
        let b = file.tensor("b").unwrap();
        assert_eq!((b.offset, b.n_bytes, b.n_rows()), (64, 102, 3));
        let start = file.data_range(b).start as usize;
        assert!(bytes[start..start + 102].iter().all(|&x| x == 3));
        assert_eq!(bytes.len() as u64, file.data_offset + 64 + 128);

        // GGUF v2 has the same layout (64-bit counts and lengths); only the version word differs.
        let mut v2 = bytes;
        v2[4..8].copy_from_slice(&2u32.to_le_bytes());
        let file2 = GgufFile::read(&MemorySource::new(v2)).unwrap();
        assert_eq!(file2.version, 2);
        assert_eq!(
            (file2.metadata, file2.tensors),
            (file.metadata, file.tensors)
        );
    }

    #[test]
    fn writer_rejects_bad_directories_and_wrong_data_sizes() {
        let m = Metadata::new();
        let dup = vec![
            TensorSpec::new("x", &[1], GgmlType::F32),
            TensorSpec::new("x", &[1], GgmlType::F32),
        ];
        assert!(matches!(
            GgufWriter::new(Vec::new(), &m, dup),
            Err(Error::Gguf(GgufError::DuplicateTensor(_)))
        ));
        let bad_row = vec![TensorSpec::new("q", &[33], GgmlType::Q4_0)];
        assert!(matches!(
            GgufWriter::new(Vec::new(), &m, bad_row),
            Err(Error::Gguf(GgufError::RowNotBlockAligned { .. }))
        ));
        let mut w = GgufWriter::new(
            Vec::new(),
            &m,
            vec![TensorSpec::new("x", &[2], GgmlType::F32)],
        )
        .unwrap();
        assert!(matches!(
            w.write_tensor_data(&[0; 9]),
            Err(Error::SizeMismatch { .. })
        ));
        w.write_tensor_data(&[0; 4]).unwrap();
        assert!(matches!(w.finish(), Err(Error::SizeMismatch { .. })));
    }
}
