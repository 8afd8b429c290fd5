//! Temporal workflows. Workflow code is deterministic: no clocks, randomness or I/O here; all of
//! that happens in activities.

pub mod ask;
pub mod resources;

pub use crate::protocol::AskOutcome;
pub use ask::{AskInput, AskStage, AskWorkflow};
pub use resources::{
    RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow, ScalingState, ScalingStatus, routes_query,
};
