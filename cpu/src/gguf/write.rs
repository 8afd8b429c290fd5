//! Writes GGUF v3 files: the test fixtures (random-weight models of every architecture, crafted
//! hostile files) and re-quantized copies of a model.

use std::io::{self, Write};

use super::Value;

/// One tensor to write: ggml order dimensions (`dims[0]` is the row length), type id, data.
pub struct TensorOut<'a> {
    pub name: &'a str,
    pub dims: &'a [u64],
    pub ggml_type: u32,
    pub data: &'a [u8],
}

const ALIGNMENT: usize = 32;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend(x.to_le_bytes()),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            // An empty array's element type is immaterial; u8 keeps it valid.
            out.extend(items.first().map_or(0, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
    }
}

/// Writes a whole GGUF file: `metadata` in the order given, then the tensors, each aligned.
pub fn write(
    w: &mut impl Write,
    metadata: &[(&str, Value)],
    tensors: &[TensorOut<'_>],
) -> io::Result<()> {
    let mut head = Vec::new();
    head.extend(b"GGUF");
    head.extend(3u32.to_le_bytes());
    head.extend((tensors.len() as u64).to_le_bytes());
    head.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        head.extend(type_id(v).to_le_bytes());
        put_value(&mut head, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut head, t.name);
        head.extend((t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| head.extend(d.to_le_bytes()));
        head.extend(t.ggml_type.to_le_bytes());
        head.extend((offset as u64).to_le_bytes());
        offset += t.data.len().div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    head.resize(head.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
    w.write_all(&head)?;
    for t in tensors {
        w.write_all(t.data)?;
        let pad = t.data.len().div_ceil(ALIGNMENT) * ALIGNMENT - t.data.len();
        w.write_all(&[0u8; ALIGNMENT][..pad])?;
    }
    Ok(())
}
