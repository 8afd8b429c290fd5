//! The storage formats a [`Matrix`](super::Matrix) keeps its rows in, with their ggml type ids and
//! their sizes in the file and in memory.

/// Storage format of a matrix's rows: the GGUF block layouts, kept compact in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// ggml's names (Q4_K, not Q4K): they are what users read in GGUF tools and model cards.
#[allow(non_camel_case_types)]
#[repr(u8)]
pub enum Format {
    F32,
    F16,
    /// bfloat16: the top half of an f32.
    BF16,
    /// f16 scale `d`, 16 bytes of nibbles: `w = d * (q - 8)`.
    Q4_0,
    /// f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles: `w = d * q + m`.
    Q4_1,
    /// f16 `d`, 32 high bits, 16 bytes of low nibbles: `w = d * (q - 16)`.
    Q5_0,
    /// f16 `d`, f16 `m`, 32 high bits, 16 bytes of low nibbles: `w = d * q + m`.
    Q5_1,
    /// f16 scale `d`, 32 signed bytes: `w = d * q`.
    Q8_0,
    /// 256-weight super-block: f16 `d`, `dmin`, eight 6-bit (scale, min) pairs, nibbles:
    /// `w = d * sc * q - dmin * m` per 32 weights.
    Q4_K,
    /// As Q4_K with a fifth bit per weight.
    Q5_K,
    /// 256-weight super-block: 6-bit weights, sixteen i8 scales (one per 16 weights), f16 `d`:
    /// `w = d * sc * (q - 32)`.
    Q6_K,
}

/// Weights per block of the 32-wide formats, and per sub-block ("unit") of every format: the
/// kernels expand weights 32 at a time.
pub const QK: usize = 32;
/// Weights per K-quant super-block.
pub const QK_K: usize = 256;

impl Format {
    /// Every format, for tests and tools.
    pub const ALL: [Format; 11] = [
        Format::F32,
        Format::F16,
        Format::BF16,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q5_1,
        Format::Q8_0,
        Format::Q4_K,
        Format::Q5_K,
        Format::Q6_K,
    ];

    /// The format of a ggml tensor type id, if it is one we keep compact.
    pub const fn from_ggml_type(id: u32) -> Option<Format> {
        Some(match id {
            0 => Format::F32,
            1 => Format::F16,
            2 => Format::Q4_0,
            3 => Format::Q4_1,
            6 => Format::Q5_0,
            7 => Format::Q5_1,
            8 => Format::Q8_0,
            12 => Format::Q4_K,
            13 => Format::Q5_K,
            14 => Format::Q6_K,
            30 => Format::BF16,
            _ => return None,
        })
    }

    /// The ggml type id (the inverse of [`Format::from_ggml_type`]).
    pub const fn ggml_type(self) -> u32 {
        match self {
            Format::F32 => 0,
            Format::F16 => 1,
            Format::Q4_0 => 2,
            Format::Q4_1 => 3,
            Format::Q5_0 => 6,
            Format::Q5_1 => 7,
            Format::Q8_0 => 8,
            Format::Q4_K => 12,
            Format::Q5_K => 13,
            Format::Q6_K => 14,
            Format::BF16 => 30,
        }
    }

    /// ggml's name for the format.
    pub const fn name(self) -> &'static str {
        match self {
            Format::F32 => "F32",
            Format::F16 => "F16",
            Format::BF16 => "BF16",
            Format::Q4_0 => "Q4_0",
            Format::Q4_1 => "Q4_1",
            Format::Q5_0 => "Q5_0",
            Format::Q5_1 => "Q5_1",
            Format::Q8_0 => "Q8_0",
            Format::Q4_K => "Q4_K",
            Format::Q5_K => "Q5_K",
            Format::Q6_K => "Q6_K",
        }
    }

    /// Whether weights are integer levels times per-block scales (not floats).
    pub const fn is_quantized(self) -> bool {
        !matches!(self, Format::F32 | Format::F16 | Format::BF16)
    }

    /// Weights per block: a row's length must be a multiple of it.
    pub const fn block_weights(self) -> usize {
        match self {
            Format::Q4_K | Format::Q5_K | Format::Q6_K => QK_K,
            _ => QK,
        }
    }

    /// Bytes of one block in the file.
    pub const fn file_block_bytes(self) -> usize {
        match self {
            Format::F32 => 4 * QK,
            Format::F16 | Format::BF16 => 2 * QK,
            Format::Q4_0 => 2 + QK / 2,
            Format::Q4_1 => 4 + QK / 2,
            Format::Q5_0 => 2 + 4 + QK / 2,
            Format::Q5_1 => 4 + 4 + QK / 2,
            Format::Q8_0 => 2 + QK,
            Format::Q4_K => 4 + 12 + QK_K / 2,
            Format::Q5_K => 4 + 12 + QK_K / 8 + QK_K / 2,
            Format::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
        }
    }

    /// Bytes of one block in memory (see `layout`): f16 scales widened to f32 and K-quant scales
    /// unpacked to bytes, so the kernels read them without conversion; at most 17% above the file.
    pub const fn mem_block_bytes(self) -> usize {
        match self {
            Format::F32 | Format::F16 | Format::BF16 => self.file_block_bytes(),
            Format::Q4_0 => 4 + 16,
            Format::Q4_1 => 8 + 16,
            Format::Q5_0 => 8 + 16,
            Format::Q5_1 => 12 + 16,
            Format::Q8_0 => 4 + 32,
            Format::Q4_K => 8 + 16 + 8 * 16,
            Format::Q5_K => 8 + 16 + 8 * 4 + 8 * 16,
            Format::Q6_K => 4 + 16 + 8 * 24,
        }
    }

    /// File bytes of `elements` weights, or `None` if that is not a whole number of blocks (or
    /// overflows).
    pub const fn file_bytes(self, elements: usize) -> Option<usize> {
        if !elements.is_multiple_of(self.block_weights()) {
            return None;
        }
        (elements / self.block_weights()).checked_mul(self.file_block_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_ids_round_trip_and_sizes_match_ggml() {
        for f in Format::ALL {
            assert_eq!(Format::from_ggml_type(f.ggml_type()), Some(f));
        }
        assert_eq!(Format::from_ggml_type(4), None);
        // ggml's block sizes (ggml-common.h).
        let want = [
            (Format::Q4_0, 18),
            (Format::Q4_1, 20),
            (Format::Q5_0, 22),
            (Format::Q5_1, 24),
            (Format::Q8_0, 34),
            (Format::Q4_K, 144),
            (Format::Q5_K, 176),
            (Format::Q6_K, 210),
            (Format::BF16, 64),
        ];
        for (f, bytes) in want {
            assert_eq!(f.file_block_bytes(), bytes, "{}", f.name());
        }
        assert_eq!(Format::Q6_K.file_bytes(512), Some(420));
        assert_eq!(Format::Q6_K.file_bytes(288), None);
        assert_eq!(Format::F32.file_bytes(usize::MAX / 2 + 1), None);
    }
}
