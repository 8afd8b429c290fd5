//! Temporal workflows. Workflow code is deterministic: no clocks, randomness or I/O here; all of
//! that happens in activities.

pub mod ask;
pub mod codegen;
pub mod multi_agent;
pub mod report;
pub mod resources;
pub mod steps;

pub use crate::protocol::AskOutcome;
pub use ask::{AskInput, AskStage, AskWorkflow};
pub use codegen::CodeGenWorkflow;
pub use multi_agent::MultiAgentWorkflow;
pub use report::ReportWorkflow;
pub use resources::{
    RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow, ScalingState, ScalingStatus, routes_query,
};
