//! Temporal activities: `ClusterActivities` run on any node (queue `orrery`), `NodeActivities` on
//! the node that must do the work (queue `orrery.node.<id>`). Activity structs hold the node's
//! `NodeHandle`, whose slots always name the current actors, so restarted actors are picked up.

mod flows;
mod generate;
mod plan;
mod scaling;

pub use flows::{
    AllocateInput, Allocated, BAD_FONT, FlowActivities, NotifyInput, NotifyOutput, RenderInput,
    RenderOutput, SaveCodeInput, code_extension,
};
pub use generate::{GenerateInput, NodeActivities, Progress};
pub use plan::{ClusterActivities, Placement, PlanInput, RoutesQuery, fallbacks};
pub use scaling::{NodeScalingActivities, ScalingActivities, cluster_view};

use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// A failure no retry can fix (bad input, unknown model), marked with its type.
pub(crate) fn non_retryable(type_name: &str, message: impl Into<String>) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message.into())
            .type_name(type_name.to_string())
            .non_retryable(true)
            .build(),
    )
}
