//! The local engine: a GGUF model on the CPU (`orrery-cpu`), with the tokenizer and
//! chat template taken from the same file, served by its own inference thread.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use orrery_cpu::gguf::Gguf;
use tokio::sync::mpsc::UnboundedReceiver;

use super::batch_size;
use super::scheduler::{SchedulerConfig, SchedulerHandle};
use super::stats::GenMetrics;
use super::template::ChatTemplate;
use super::tokenizer::GgufTokenizer;
use super::tokenizer::Segment;
use super::weights::{self, Precision};
use super::{
    ChatMessage, Embedded, Engine, EngineError, EngineInfo, GenEvent, GenerateRequest,
    SamplingParams,
};

/// Environment variable that sets the threads per forward pass (default: one per core).
pub const THREADS_ENV: &str = "ORRERY_ENGINE_THREADS";

/// Tunables of a [`LocalEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// Answers decoded concurrently (each holds its own KV cache); further requests queue. 0:
    /// measured at load (`batch_size`).
    pub max_sequences: usize,
    /// Prompt tokens per forward pass: long prompts are fed in chunks so the other answers keep
    /// streaming and a cancel is seen between chunks.
    pub prefill_chunk: usize,
    pub precision: Precision,
    /// Threads per forward pass; 0: `ORRERY_ENGINE_THREADS` if set, else one per core.
    pub threads: usize,
    /// Longest sequence (prompt and answer) in tokens: the model's own context length capped by
    /// this; 0 means [`DEFAULT_CONTEXT`].
    pub context: usize,
    /// Keep finished answers' KV states (up to one full context's worth, least recently used
    /// out) so prompts that start the same way prefill only what is new.
    pub prefix_cache: bool,
}

/// Context a model gets when its configuration names none: the KV cache of every sequence is
/// reserved at this length, so a larger default would make every model look far bigger to
/// admission. A per-model `context` setting goes beyond it, up to the model's own.
pub const DEFAULT_CONTEXT: usize = 4096;

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            max_sequences: 4,
            // About half a second of prompt processing on two cores: keeps other answers
            // streaming and cancellation prompt while costing little throughput.
            prefill_chunk: 64,
            precision: Precision::default(),
            threads: 0,
            context: 0,
            prefix_cache: true,
        }
    }
}

/// A GGUF model served from a dedicated inference thread.
pub struct LocalEngine {
    model_id: String,
    info: EngineInfo,
    tokenizer: Arc<GgufTokenizer>,
    template: Arc<ChatTemplate>,
    scheduler: SchedulerHandle,
    /// The weights the inference thread decodes with, shared for embeddings (which run on the
    /// caller's thread, beside the decoding).
    model: Arc<orrery_cpu::Model>,
    context_len: usize,
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LocalEngine {
    /// Loads `path` with the default [`LocalConfig`]. Blocking (reads ~100 MB): call it from
    /// `spawn_blocking` or before the runtime starts.
    pub fn load(path: &Path, model_id: impl Into<String>) -> Result<Self, EngineError> {
        Self::load_with(path, model_id, LocalConfig::default())
    }

    pub fn load_with(
        path: &Path,
        model_id: impl Into<String>,
        config: LocalConfig,
    ) -> Result<Self, EngineError> {
        let model_id = model_id.into();
        let load_err = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::Load(format!("{what} {}: {e}", path.display()))
        };
        let mut file = File::open(path).map_err(|e| load_err("opening", &e))?;
        let gguf = Gguf::read(&mut file).map_err(|e| load_err("reading", &e))?;
        // The architecture first: "not supported" says more than a tokenizer complaint would.
        orrery_cpu::ModelConfig::from_gguf(&gguf).map_err(|e| load_err("loading", &e))?;
        let tokenizer = GgufTokenizer::from_gguf(&gguf)?;
        let template = chat_template(&gguf, &tokenizer)?;
        let wanted = match config.context {
            0 => DEFAULT_CONTEXT,
            n => n,
        };
        let threads = match config.threads {
            0 => std::env::var(THREADS_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            n => n,
        };
        let loaded = weights::load(&gguf, &mut file, config.precision, threads, wanted).map_err(
            |e| match e {
                EngineError::Load(msg) => EngineError::Load(format!("{}: {msg}", path.display())),
                other => other,
            },
        )?;
        for w in &loaded.warnings {
            tracing::warn!(model.id = %model_id, "{w}");
        }
        let context_len = wanted.min(loaded.model.config.context_len);

        let kv_bytes_per_seq = loaded.model.config.kv_bytes_per_token() * context_len as u64;
        let model = Arc::new(loaded.model);
        let max_sequences = match config.max_sequences {
            0 => {
                let (n, measured) =
                    batch_size::auto_sequences(&model, sequences_memory_allows(kv_bytes_per_seq));
                tracing::info!(model.id = %model_id, max_sequences = n, ?measured,
                    "max_sequences measured at load (decode step time per batch size)");
                n
            }
            n => n,
        };
        // The prefix cache keeps up to one full context's worth of finished answers' states.
        let prefix_cache_bytes = if config.prefix_cache {
            kv_bytes_per_seq
        } else {
            0
        };
        let info = EngineInfo {
            model_id: model_id.clone(),
            kind: "gguf".to_string(),
            context_len: context_len as u32,
            memory_bytes: loaded.weight_bytes
                + kv_bytes_per_seq * max_sequences as u64
                + prefix_cache_bytes,
            max_sequences,
        };
        let tokenizer = Arc::new(tokenizer);
        let template = Arc::new(template);
        let scheduler = SchedulerHandle::spawn(
            &model_id,
            Arc::clone(&model),
            Arc::clone(&tokenizer),
            Arc::clone(&template),
            SchedulerConfig {
                max_sequences,
                prefill_chunk: config.prefill_chunk,
                context_len,
                prefix_cache_bytes: prefix_cache_bytes as usize,
            },
            GenMetrics::new(&model_id),
        )
        .map_err(|e| EngineError::Load(format!("starting the inference thread: {e}")))?;
        tracing::info!(
            model.id = %model_id, context_len, max_sequences, threads, precision = ?config.precision,
            "model loaded"
        );
        Ok(LocalEngine {
            model_id,
            info,
            tokenizer,
            template,
            scheduler,
            model,
            context_len,
        })
    }

    /// The tokenizer read from the GGUF file.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The prompt text the model sees for `messages` (plus `resume_text`).
    pub fn render_prompt(
        &self,
        messages: &[ChatMessage],
        resume_text: &str,
    ) -> Result<String, EngineError> {
        self.template.prompt(messages, resume_text)
    }
}

/// Sequences whose full-context KV caches fit in half the memory available now (the weights are
/// already read): the bound on a measured `max_sequences`.
fn sequences_memory_allows(kv_bytes_per_seq: u64) -> usize {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    (sys.available_memory() / 2 / kv_bytes_per_seq.max(1)).max(1) as usize
}

impl Engine for LocalEngine {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    fn count_tokens(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<u32, EngineError> {
        let segments = self.template.request_segments(messages, params, "")?;
        Ok(self.tokenizer.encode_prompt(&segments)?.len() as u32)
    }

    fn generate(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent> {
        self.scheduler.submit(req)
    }

    fn embed(&self, texts: &[String]) -> Result<Embedded, EngineError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0;
        for (i, text) in texts.iter().enumerate() {
            // As text: a control token typed in an input is not one.
            let ids = self
                .tokenizer
                .encode_prompt(&[Segment::Text(text.clone())])?;
            if ids.is_empty() {
                return Err(EngineError::InvalidParams(format!("input {i} is empty")));
            }
            if ids.len() > self.context_len {
                return Err(EngineError::PromptTooLong {
                    prompt_tokens: ids.len() as u32,
                    context_len: self.context_len as u32,
                });
            }
            tokens += ids.len() as u32;
            vectors.push(
                self.model
                    .embed(&ids)
                    .map_err(|e| EngineError::Inference(e.to_string()))?,
            );
        }
        Ok(Embedded { vectors, tokens })
    }

    fn active_sequences(&self) -> usize {
        self.scheduler.active()
    }

    fn queued(&self) -> usize {
        self.scheduler.queued()
    }

    fn cached_marks(&self) -> Vec<u64> {
        self.scheduler.cached_marks()
    }
}

/// The model's chat template, with the BOS/EOS texts it may refer to.
fn chat_template(gguf: &Gguf, tokenizer: &GgufTokenizer) -> Result<ChatTemplate, EngineError> {
    let token_text = |id: Option<u32>| {
        id.map(|id| match tokenizer.control_text(id) {
            Some(t) => t.to_string(),
            None => tokenizer.decode(&[id]),
        })
        .unwrap_or_default()
    };
    let bos = token_text(tokenizer.bos_id());
    let eos = token_text(Some(tokenizer.eos_id()));
    let source = gguf.str("tokenizer.chat_template");
    if source.is_none() {
        tracing::warn!("model has no chat template: using plain ChatML");
    }
    ChatTemplate::new(source, &bos, &eos)
}
