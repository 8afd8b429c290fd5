//! Identifier newtypes: nodes, models and requests.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

/// Every ask's workflow id starts with this; the rest is random.
pub const ASK_WORKFLOW_PREFIX: &str = "ask-";

id_type!(
    /// A node of the cluster; also names its Temporal task queue.
    NodeId
);
id_type!(
    /// A model as users name it (`smollm2-135m`).
    ModelId
);
id_type!(
    /// One user request; it is also the id of its AskWorkflow.
    RequestId
);

impl RequestId {
    /// A fresh, unguessable request id.
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            ASK_WORKFLOW_PREFIX,
            uuid::Uuid::new_v4().simple()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_prefixed() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(ASK_WORKFLOW_PREFIX));
    }
}
