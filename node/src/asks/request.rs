//! An ask as the WebSocket and REST APIs take it (`AskFields`), and as every front door hands it
//! to the service (`AskRequest`). The defaults of an ask live here and in `SamplingParams`, once.

use super::AskError;
use crate::protocol::{ChatMessage, Priority, Role, SamplingParams};
use serde::Deserialize;

/// An ask as a client sends it, before validation.
#[derive(Clone, Debug, Default)]
pub struct AskRequest {
    pub user: String,
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    pub priority: Option<Priority>,
}

/// The fields of an ask in the WebSocket `ask` frame and the REST `POST /api/asks` body
/// (docs/websocket.md, docs/rest.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskFields {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<ChatMessage>>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Option<Vec<String>>,
    pub priority: Option<Priority>,
    /// Echoed back so a client can match the reply.
    pub client_id: Option<String>,
    /// Accepted from older clients and ignored: the API key decides the user.
    #[serde(rename = "user")]
    pub _user: Option<String>,
}

impl AskFields {
    /// The request these fields ask for, with the defaults of everything left out.
    pub fn into_request(self) -> Result<AskRequest, AskError> {
        let messages = match (self.prompt, self.messages) {
            (Some(_), Some(_)) => {
                return Err(AskError::InvalidParams(
                    "give `prompt` or `messages`, not both".into(),
                ));
            }
            (Some(p), None) => vec![ChatMessage::new(Role::User, p)],
            (None, Some(m)) => m,
            (None, None) => return Err(AskError::MissingField("`prompt` or `messages`")),
        };
        let d = SamplingParams::default();
        Ok(AskRequest {
            user: String::new(),
            model: self.model,
            messages,
            params: SamplingParams {
                max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
                temperature: self.temperature.unwrap_or(d.temperature),
                top_p: self.top_p.or(d.top_p),
                seed: self.seed.unwrap_or(d.seed),
                stop: self.stop.unwrap_or_default(),
                ..d
            },
            priority: self.priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_left_out_and_prompt_xor_messages() {
        let f: AskFields = serde_json::from_str(r#"{"prompt": "hi", "seed": 7}"#).unwrap();
        let r = f.into_request().unwrap();
        assert_eq!(r.messages, vec![ChatMessage::new(Role::User, "hi")]);
        assert_eq!(r.params.seed, 7);
        assert_eq!(r.params.max_tokens, SamplingParams::default().max_tokens);
        let both: AskFields = serde_json::from_str(r#"{"prompt": "a", "messages": []}"#).unwrap();
        assert_eq!(both.into_request().unwrap_err().code(), "invalid_params");
        let none: AskFields = serde_json::from_str("{}").unwrap();
        assert_eq!(none.into_request().unwrap_err().code(), "missing_field");
        assert!(serde_json::from_str::<AskFields>(r#"{"promt": "typo"}"#).is_err());
    }
}
