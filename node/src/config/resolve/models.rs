//! The models a node may serve: ids, sources, bounds, the default, fallbacks.

use super::valid_id;
use crate::config::raw::RawModel;
use crate::config::{
    DEFAULT_MODEL_ID, DEFAULT_MODEL_PACKAGE, ModelConfig, ModelSource, parse_source,
};
use crate::protocol::ModelId;

/// Most answers a synthetic model may generate at once.
pub const MAX_SYNTHETIC_SEQUENCES: usize = 4096;

/// The bundled default model, served when the file configures none.
fn default_models() -> Vec<RawModel> {
    vec![RawModel {
        id: DEFAULT_MODEL_ID.into(),
        source: format!("package:{DEFAULT_MODEL_PACKAGE}"),
        load: Some(true),
        max_sequences: None,
        default: Some(true),
        // As stored: the engine keeps activations f32, so the answers are the reference ones
        // ("The capital of France is Paris.") at quantized speed.
        precision: None,
        context: None,
        prefix_cache: None,
        min_replicas: None,
        max_replicas: None,
        fallback: None,
        remote_model: None,
        api_key_env: None,
    }]
}

/// One model's settings, with every problem of its own pushed to `errors`.
fn model(m: RawModel, errors: &mut Vec<String>) -> Option<ModelConfig> {
    if !valid_id(&m.id) {
        errors.push(format!(
            "model id `{}`: use 1-64 letters, digits, '-', '_' or '.'",
            m.id
        ));
    }
    if let Some(ctx) = m.context
        && !(16..=1 << 20).contains(&ctx)
    {
        errors.push(format!(
            "model `{}`: context {ctx} out of range 16..=1048576",
            m.id
        ));
    }
    let (min_replicas, max_replicas) = (m.min_replicas.unwrap_or(1), m.max_replicas.unwrap_or(8));
    if min_replicas > max_replicas {
        errors.push(format!(
            "model `{}`: min_replicas {min_replicas} is above max_replicas {max_replicas}",
            m.id
        ));
    }
    let source = parse_source(&m.source);
    // The synthetic engine holds no memory per answer, and the fan-out benchmark streams a
    // thousand answers from one node; a real engine's sequences share its KV memory.
    let most_sequences = match source {
        Ok(ModelSource::Synthetic { .. }) => MAX_SYNTHETIC_SEQUENCES,
        _ => 64,
    };
    let max_sequences = m.max_sequences;
    if let Some(max_sequences) = max_sequences
        && !(1..=most_sequences).contains(&max_sequences)
    {
        errors.push(format!(
            "model `{}`: max_sequences {max_sequences} out of range 1..={most_sequences}",
            m.id
        ));
    }
    let mut source = match source {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("model `{}`: {e}", m.id));
            return None;
        }
    };
    if let ModelSource::Remote {
        remote_model,
        api_key_env,
        ..
    } = &mut source
    {
        *remote_model = m.remote_model;
        *api_key_env = m.api_key_env;
    }
    Some(ModelConfig {
        id: ModelId::new(&m.id),
        source,
        load: m.load.unwrap_or(true),
        max_sequences,
        precision: m.precision.unwrap_or_default(),
        context: m.context,
        prefix_cache: m.prefix_cache.unwrap_or(true),
        min_replicas,
        max_replicas,
        fallback: m.fallback.as_deref().map(ModelId::new),
    })
}

/// Every configured model and the default one.
pub(super) fn resolve(raw: Vec<RawModel>, errors: &mut Vec<String>) -> (Vec<ModelConfig>, ModelId) {
    let raw = if raw.is_empty() {
        default_models()
    } else {
        raw
    };
    let mut seen = Vec::new();
    let mut defaults = Vec::new();
    let mut models = Vec::new();
    for m in raw {
        if seen.contains(&m.id) {
            errors.push(format!("model id `{}` appears twice", m.id));
        }
        seen.push(m.id.clone());
        if m.default == Some(true) {
            defaults.push(ModelId::new(&m.id));
        }
        models.extend(model(m, errors));
    }
    if defaults.len() > 1 {
        errors.push("more than one model has default = true".into());
    }
    for m in &models {
        if let Some(f) = &m.fallback
            && !seen.iter().any(|id| id == f.as_str())
        {
            errors.push(format!(
                "model `{}`: fallback `{f}` is not a configured model",
                m.id
            ));
        }
    }
    let default_model = defaults
        .into_iter()
        .next()
        .or_else(|| models.first().map(|m| m.id.clone()))
        .unwrap_or_else(|| ModelId::new(DEFAULT_MODEL_ID));
    (models, default_model)
}
