//! GGUF files, read defensively: every declared length, count, shape and offset is checked
//! against what the file can hold before anything is allocated from it, so a truncated or crafted
//! file is a clear [`GgufError`], never an abort or an allocation larger than the file.
//!
//! Layout (GGUF v2/v3, little-endian): magic `GGUF`, version, tensor count, metadata count, the
//! metadata key/value pairs, the tensor infos (name, dimensions, ggml type, offset), then the
//! tensor data from the next multiple of `general.alignment` (default 32).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::kernels::Format;

mod value;
mod write;
pub use value::{Value, ggml_type_name};
pub use write::{TensorOut, write};

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's limit on tensor dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal but no model uses more than one level; deeper is refused.
const MAX_ARRAY_DEPTH: u32 = 2;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a GGUF file (it starts with {0:?}, not \"GGUF\")")]
    NotGguf([u8; 4]),
    #[error("GGUF version {0} is not supported (only 2 and 3)")]
    Version(u32),
    #[error("the file is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("metadata key {key:?} is truncated or corrupt: {problem}")]
    Metadata { key: String, problem: String },
    #[error("tensor {name:?}: {problem}")]
    Tensor { name: String, problem: String },
}

fn corrupt(what: impl Into<String>) -> GgufError {
    GgufError::Corrupt(what.into())
}

/// Where one tensor's data lies, as declared by the file and checked against it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (columns), `dims[1]` the rows.
    pub dims: Vec<u64>,
    /// The ggml type id as stored.
    pub ggml_type: u32,
    /// `None` when this engine does not know the type (the tensor can be listed, not loaded).
    pub format: Option<Format>,
    /// Absolute file offset of the data.
    pub offset: u64,
    /// Bytes of data (known when the format is).
    pub bytes: Option<u64>,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Name of the stored type, as llama.cpp prints it.
    pub fn type_name(&self) -> String {
        match self.format {
            Some(f) => f.name().to_string(),
            None => ggml_type_name(self.ggml_type),
        }
    }
}

/// A parsed GGUF header: metadata and tensor infos, no tensor data.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    pub file_len: u64,
}

/// Reads little-endian values and refuses to read or allocate past the end of the file.
struct Cursor<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        if self.remaining() < N as u64 {
            return Err(corrupt(format!(
                "it ends at byte {} inside the header",
                self.len
            )));
        }
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// A count of items that take at least `min_bytes` each: no more than the file can hold.
    fn count(&mut self, min_bytes: u64, what: &str) -> Result<usize, GgufError> {
        let n = self.u64()?;
        if n.saturating_mul(min_bytes) > self.remaining() {
            return Err(corrupt(format!(
                "it declares {n} {what}, more than its {} remaining bytes can hold",
                self.remaining()
            )));
        }
        usize::try_from(n).map_err(|_| corrupt(format!("{n} {what}")))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.count(1, "bytes of string")?;
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.pos += n as u64;
        // Token texts are sometimes not valid UTF-8 (partial characters of a byte-level
        // vocabulary): keep what is readable rather than refusing the model.
        Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.bytes::<1>()?[0]),
            1 => Value::I8(self.bytes::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.bytes()?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.bytes()?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes()?)),
            7 => match self.bytes::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(corrupt(format!("a boolean of value {b}"))),
            },
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(corrupt("arrays nested too deep"));
                }
                let elem = self.u32()?;
                let n = self.count(min_value_bytes(elem)?, "array elements")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.bytes()?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes()?)),
            other => return Err(corrupt(format!("unknown metadata value type {other}"))),
        })
    }
}

/// The fewest bytes a value of type `ty` takes in the file (bounds array counts).
fn min_value_bytes(ty: u32) -> Result<u64, GgufError> {
    Ok(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        other => return Err(corrupt(format!("unknown array element type {other}"))),
    })
}

impl Gguf {
    /// Reads the header of the file at `path`.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let mut file = File::open(path)?;
        Self::read(&mut file)
    }

    /// Reads the header from the start of `file`.
    pub fn read(file: &mut File) -> Result<Self, GgufError> {
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(0))?;
        Self::read_from(BufReader::new(file), len)
    }

    /// Reads a header of a file of `len` bytes from `reader`, positioned at its start.
    pub fn read_from(reader: impl Read, len: u64) -> Result<Self, GgufError> {
        let mut c = Cursor {
            inner: reader,
            pos: 0,
            len,
        };
        let magic = c
            .bytes::<4>()
            .map_err(|_| corrupt("shorter than a GGUF header"))?;
        if &magic != MAGIC {
            return Err(GgufError::NotGguf(magic));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        // A tensor info takes at least 8 (name) + 4 (dims) + 8 (one dim) + 4 + 8 bytes; a
        // metadata pair at least 8 (key) + 4 (type) + 1.
        let n_tensors = c.count(32, "tensors")?;
        let n_kv = c.count(13, "metadata entries")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let value = c.value(ty, 0).map_err(|e| match e {
                GgufError::Corrupt(problem) => GgufError::Metadata {
                    key: key.clone(),
                    problem,
                },
                other => other,
            })?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            tensors.push(read_tensor_info(&mut c)?);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => {
                    return Err(GgufError::Metadata {
                        key: "general.alignment".into(),
                        problem: format!("{v:?} is not a power of two up to 1 MiB"),
                    });
                }
            },
        };
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let mut gguf = Gguf {
            version,
            metadata,
            tensors,
            file_len: len,
        };
        gguf.place_tensors(data_start, alignment)?;
        Ok(gguf)
    }

    /// Makes tensor offsets absolute and checks that each tensor's data lies inside the file.
    fn place_tensors(&mut self, data_start: u64, alignment: u64) -> Result<(), GgufError> {
        let mut seen = std::collections::HashSet::new();
        for t in &mut self.tensors {
            let bad = |problem: String| GgufError::Tensor {
                name: t.name.clone(),
                problem,
            };
            if !seen.insert(t.name.clone()) {
                return Err(bad("declared twice".into()));
            }
            if t.offset % alignment != 0 {
                return Err(bad(format!(
                    "offset {} is not aligned to {alignment}",
                    t.offset
                )));
            }
            let start = data_start
                .checked_add(t.offset)
                .ok_or_else(|| bad("its offset overflows".into()))?;
            if let Some(bytes) = t.bytes {
                let end = start
                    .checked_add(bytes)
                    .ok_or_else(|| bad("its size overflows".into()))?;
                if end > self.file_len {
                    return Err(bad(format!(
                        "its data ({bytes} bytes at {start}) runs past the end of the \
                         {}-byte file: truncated or corrupt",
                        self.file_len
                    )));
                }
            }
            t.offset = start;
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(Value::as_f32)
    }

    /// `general.architecture`, or "" if missing.
    pub fn architecture(&self) -> &str {
        self.str("general.architecture").unwrap_or("")
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes of all tensor data declared.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().filter_map(|t| t.bytes).sum()
    }

    /// Reads one tensor's data (bounds were checked when the header was read).
    pub fn read_tensor(&self, file: &mut File, t: &TensorInfo) -> Result<Vec<u8>, GgufError> {
        let bytes = t.bytes.ok_or_else(|| GgufError::Tensor {
            name: t.name.clone(),
            problem: format!("its type {} is not supported", t.type_name()),
        })?;
        let n = usize::try_from(bytes).map_err(|_| GgufError::Tensor {
            name: t.name.clone(),
            problem: format!("{bytes} bytes do not fit in memory"),
        })?;
        let mut data = vec![0u8; n];
        file.seek(SeekFrom::Start(t.offset))?;
        file.read_exact(&mut data).map_err(|e| GgufError::Tensor {
            name: t.name.clone(),
            problem: format!("reading its data: {e}"),
        })?;
        Ok(data)
    }
}

fn read_tensor_info(c: &mut Cursor<impl Read>) -> Result<TensorInfo, GgufError> {
    let name = c.string()?;
    let bad = |problem: String| GgufError::Tensor {
        name: name.clone(),
        problem,
    };
    let n_dims = c.u32()?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(bad(format!(
            "{n_dims} dimensions (1 to {MAX_DIMS} allowed)"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64()?);
    }
    let elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n > 0 && n <= c.len.saturating_mul(8))
        .ok_or_else(|| {
            bad(format!(
                "dimensions {dims:?} are empty or far larger than the {}-byte file",
                c.len
            ))
        })?;
    let ggml_type = c.u32()?;
    let offset = c.u64()?;
    let format = Format::from_ggml_type(ggml_type);
    let bytes = match format {
        Some(f) => {
            if dims[0] % f.block_weights() as u64 != 0 {
                return Err(bad(format!(
                    "rows of {} values are not whole {} blocks of {}",
                    dims[0],
                    f.name(),
                    f.block_weights()
                )));
            }
            Some(
                usize::try_from(elements)
                    .ok()
                    .and_then(|n| f.file_bytes(n))
                    .ok_or_else(|| bad(format!("{elements} values overflow")))?
                    as u64,
            )
        }
        None => None,
    };
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        format,
        offset,
        bytes,
    })
}

#[cfg(test)]
mod tests;
