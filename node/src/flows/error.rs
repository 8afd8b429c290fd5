//! Why a workflow cannot be started, found or read.

#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum FlowError {
    #[error("model `{0}` is not served by this cluster")]
    UnknownModel(String),
    #[error("{0}")]
    InvalidParams(String),
    #[error("no workflow {0}")]
    NotFound(String),
    #[error("workflow {0} belongs to another user")]
    Forbidden(String),
    #[error("workflow {0} already ended ({1})")]
    AlreadyFinished(String, &'static str),
    #[error("{0}")]
    Unavailable(String),
}

impl FlowError {
    /// The stable machine-readable code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            FlowError::UnknownModel(_) => "unknown_model",
            FlowError::InvalidParams(_) => "invalid_params",
            FlowError::NotFound(_) => "not_found",
            FlowError::Forbidden(_) => "forbidden",
            FlowError::AlreadyFinished(..) => "already_finished",
            FlowError::Unavailable(_) => "unavailable",
        }
    }
}
