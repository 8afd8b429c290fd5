//! Inference engines behind one interface: the candle GGUF engine and, for orchestration tests and
//! benchmarks, a synthetic engine of fixed token rate.
//!
//! INTERFACE CONTRACT (the rest of the node is written against exactly this; keep these names):
//!
//! ```ignore
//! pub enum Role { System, User, Assistant }            // serde: "system" | "user" | "assistant"
//! pub struct ChatMessage { pub role: Role, pub content: String }   // Serialize/Deserialize/Clone/Debug/PartialEq
//! pub struct SamplingParams {                           // Serialize/Deserialize/Clone/Debug/PartialEq
//!     pub max_tokens: u32, pub temperature: f64,        // temperature 0 => greedy (argmax)
//!     pub top_p: Option<f64>, pub seed: u64, pub stop: Vec<String>,
//! }
//! impl Default for SamplingParams                       // max_tokens 256, temperature 0.7, top_p None, seed 0, stop []
//! impl SamplingParams { pub fn validate(&self) -> Result<(), EngineError> } // ranges: max_tokens 1..=4096,
//!                                                       // temperature 0..=2, top_p (0,1], <=4 stop strings each 1..=64 bytes
//! pub enum FinishReason { Stop, Length, Cancelled }     // serde lowercase
//! pub struct GenerateRequest {
//!     pub messages: Vec<ChatMessage>, pub params: SamplingParams,
//!     pub resume_text: String,   // answer text already produced (failover/resume): continue after it,
//!                                // emit only new text; "" for a fresh answer
//!     pub cancel: tokio_util::sync::CancellationToken,  // checked between tokens
//! }
//! pub enum GenEvent {                                   // sent in order over an unbounded tokio mpsc
//!     Token { text: String },                           // new text (valid UTF-8, never splits a char; held back
//!                                                       // while it may be the start of a stop string)
//!     Done(GenSummary),                                 // last event on success / cancellation
//!     Failed(EngineError),                              // last event on error
//! }
//! pub struct GenSummary { pub finish_reason: FinishReason, pub prompt_tokens: u32,
//!     pub completion_tokens: u32, pub time_to_first_token: Duration, pub total: Duration }
//! #[derive(thiserror::Error)] pub enum EngineError { InvalidParams(String), PromptTooLong{..}, Load(String),
//!     Inference(String), ... }                          // Clone + Debug + Display
//! pub trait Engine: Send + Sync + 'static {
//!     fn model_id(&self) -> &str;
//!     fn info(&self) -> EngineInfo;                     // context_len, memory_bytes estimate, kind ("candle-gguf" | "synthetic")
//!     fn count_tokens(&self, messages: &[ChatMessage]) -> Result<u32, EngineError>;  // prompt tokens after template
//!     fn generate(&self, req: GenerateRequest) -> tokio::sync::mpsc::UnboundedReceiver<GenEvent>;
//!     fn active_sequences(&self) -> usize;  fn queued(&self) -> usize;
//! }
//! ```
