//! Hostile and truncated files are refused with a clear error, never a panic or an allocation
//! from a declared size.

use super::*;

fn sample() -> Vec<u8> {
    let data: Vec<u8> = (0..64u32 * 4).map(|i| i as u8).collect();
    let mut out = Vec::new();
    write(
        &mut out,
        &[
            ("general.architecture", Value::String("llama".into())),
            ("llama.block_count", Value::U32(2)),
            (
                "tokenizer.ggml.tokens",
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
        ],
        &[
            TensorOut {
                name: "ta",
                dims: &[32, 2],
                ggml_type: 0,
                data: &data,
            },
            TensorOut {
                name: "tb",
                dims: &[32],
                ggml_type: 1,
                data: &data[..64],
            },
        ],
    )
    .unwrap();
    out
}

fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
    Gguf::read_from(bytes, bytes.len() as u64)
}

/// Offset of the first occurrence of `needle`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn a_written_file_reads_back() {
    let bytes = sample();
    let g = parse(&bytes).unwrap();
    assert_eq!(g.architecture(), "llama");
    assert_eq!(g.u64("llama.block_count"), Some(2));
    assert_eq!(g.tensors.len(), 2);
    let a = g.tensor("ta").unwrap();
    assert_eq!((a.dims.clone(), a.bytes), (vec![32, 2], Some(256)));
    assert_eq!(a.offset % 32, 0);
    assert_eq!(
        &bytes[a.offset as usize..a.offset as usize + 4],
        &[0, 1, 2, 3]
    );
    let b = g.tensor("tb").unwrap();
    assert_eq!(b.bytes, Some(64));
    assert_eq!(b.type_name(), "F16");
}

#[test]
fn every_truncation_is_a_clear_error() {
    let bytes = sample();
    for cut in 0..bytes.len() {
        match parse(&bytes[..cut]) {
            Err(GgufError::Corrupt(_) | GgufError::Tensor { .. } | GgufError::Metadata { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_huge_declared_string_is_refused_before_allocating() {
    let mut bytes = sample();
    let at = find(&bytes, b"general.architecture") - 8;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("more than its"), "{err}");
}

#[test]
fn a_huge_declared_array_is_refused_before_allocating() {
    let mut bytes = sample();
    // The array's count follows its key, the value type (9) and the element type (8).
    let at = find(&bytes, b"tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".len() + 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}

#[test]
fn huge_counts_of_tensors_or_metadata_are_refused() {
    for at in [8, 16] {
        let mut bytes = sample();
        bytes[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(
            matches!(parse(&bytes), Err(GgufError::Corrupt(_))),
            "at {at}"
        );
    }
}

/// Where tensor `name`'s info starts (its name's bytes).
fn tensor_info(bytes: &[u8], name: &str) -> usize {
    let head_end = find(bytes, b"tokenizer.ggml.tokens");
    head_end
        + find(
            &bytes[head_end..],
            &[&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat(),
        )
        + 8
        + name.len()
}

#[test]
fn oversized_dimensions_are_refused() {
    let mut bytes = sample();
    let at = tensor_info(&bytes, "ta") + 4;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("far larger than"), "{err}");
    let mut bytes = sample();
    bytes[at..at + 8].copy_from_slice(&(1u64 << 31).to_le_bytes());
    bytes[at + 8..at + 16].copy_from_slice(&(1u64 << 31).to_le_bytes());
    assert!(parse(&bytes).is_err());
}

#[test]
fn data_past_the_end_or_overflowing_offsets_are_refused() {
    let bytes = sample();
    // dims (2 × u64) then the type, then the offset.
    let at = tensor_info(&bytes, "tb") + 4 + 8 + 4;
    for (offset, want) in [(u64::MAX - 31, "overflow"), (1 << 20, "past the end")] {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&offset.to_le_bytes());
        let err = parse(&b).unwrap_err().to_string();
        assert!(err.contains(want), "{offset}: {err}");
    }
    let mut b = bytes.clone();
    b[at..at + 8].copy_from_slice(&3u64.to_le_bytes());
    assert!(parse(&b).unwrap_err().to_string().contains("aligned"));
}

#[test]
fn bad_magic_version_and_value_types_are_named() {
    let mut b = sample();
    b[0] = b'X';
    assert!(matches!(parse(&b), Err(GgufError::NotGguf(_))));
    let mut b = sample();
    b[4] = 9;
    assert!(parse(&b).unwrap_err().to_string().contains("version 9"));
    let mut b = sample();
    let at = find(&b, b"general.architecture") + "general.architecture".len();
    b[at] = 77;
    let err = parse(&b).unwrap_err().to_string();
    assert!(
        err.contains("general.architecture") && err.contains("77"),
        "{err}"
    );
}

#[test]
fn random_corruption_never_panics() {
    let base = sample();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = next() % b.len();
            b[i] = next() as u8;
        }
        // Any result is fine; a panic or abort is not.
        let _ = parse(&b);
    }
}
