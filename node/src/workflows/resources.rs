//! ResourceManagementWorkflow: the cluster's one scaling loop. Every tick it collects every node's
//! snapshot (an activity), asks the pure `policy::decide` what to do, carries out loads and unloads
//! as activities on the target nodes' own queues, and keeps a bounded log of every decision with its
//! reason. The admin's overrides arrive as signals and wake the loop at once; queries return the
//! log, the last view and the current settings. Continue-as-new bounds its history and carries the
//! whole state over.

use crate::activities::RoutesQuery;
use crate::activities::fallbacks;
use crate::activities::{NodeScalingActivities, ScalingActivities};
use crate::policy::{
    ClusterView, Decision, Directive, ModelName, NodeName, Overrides, Policy, PolicyState, Route,
    decide,
};
use crate::protocol::{NodeId, node_task_queue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, LocalActivityOptions, SyncWorkflowContext,
    WorkflowContext, WorkflowContextView, WorkflowResult,
};

/// The one scaling workflow of a cluster: every node tries to start it; one runs.
pub use crate::protocol::RESOURCE_WORKFLOW_ID;

/// Decisions kept for the admin (the oldest drop out).
const LOG_LIMIT: usize = 300;
/// Ticks per run before continuing as new.
const TICKS_PER_RUN: u64 = 200;

/// Patch marker: this history pushes changed routes to the nodes.
const PUSH_ROUTES: &str = "push-routes";

/// Where each model's asks go under `state`.
fn routes_of(state: &PolicyState) -> BTreeMap<ModelName, Route> {
    state
        .models
        .iter()
        .map(|(m, st)| (m.clone(), st.route.clone()))
        .collect()
}

/// Everything the loop carries from tick to tick and across continue-as-new.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalingState {
    pub tick_secs: u64,
    pub policy: Policy,
    pub overrides: Overrides,
    pub policy_state: PolicyState,
    pub log: VecDeque<Decision>,
    pub last_view: Option<ClusterView>,
    pub ticks: u64,
}

/// What the admin sees: settings, routes and the last view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingStatus {
    pub policy: Policy,
    pub overrides: Overrides,
    pub routes: BTreeMap<ModelName, Route>,
    pub last_view: Option<ClusterView>,
    pub ticks: u64,
}

#[workflow]
#[derive(Default)]
pub struct ResourceManagementWorkflow {
    s: ScalingState,
    /// Set by a signal: run the next tick now.
    wake: bool,
}

fn at_ms(ctx: &WorkflowContext<ResourceManagementWorkflow>) -> u64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn node_activity(node: &str) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(300))
        .task_queue(node_task_queue(&NodeId::new(node)))
        .schedule_to_start_timeout(Duration::from_secs(15))
        .retry_policy(RetryPolicy::builder().maximum_attempts(2).build())
        .build()
}

impl ResourceManagementWorkflow {
    fn note(&mut self, d: Decision) {
        self.s.log.push_back(d);
        while self.s.log.len() > LOG_LIMIT {
            self.s.log.pop_front();
        }
    }

    fn admin_note(&mut self, at_ms: u64, reason: String) {
        self.note(Decision {
            at_ms,
            model: None,
            directive: None,
            reason,
        });
        self.wake = true;
    }

    fn now_of(ctx: &SyncWorkflowContext<Self>) -> u64 {
        ctx.workflow_time()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// One tick of the loop on a collected view: decide, carry out each directive on its node, and
/// log every decision (and every directive that failed).
async fn tick(
    ctx: &mut WorkflowContext<ResourceManagementWorkflow>,
    mut view: ClusterView,
    now: u64,
) {
    view.now_ms = now;
    let (decisions, next) =
        ctx.state(|w| decide(&view, &w.s.policy, &w.s.overrides, &w.s.policy_state));
    let (before, after) = ctx.state(|w| {
        (
            fallbacks(&routes_of(&w.s.policy_state)),
            fallbacks(&routes_of(&next)),
        )
    });
    // The nodes hear of a change at once, so plans need not ask the loop.
    if before != after && ctx.patched(PUSH_ROUTES) {
        let pushed = ctx
            .execute_local_activity(
                ScalingActivities::publish_routes,
                after,
                LocalActivityOptions::builder()
                    .start_to_close_timeout(Duration::from_secs(5))
                    .build(),
            )
            .await;
        if let Err(e) = pushed {
            // Nodes read the routes from the loop once theirs grow old.
            ctx.state_mut(|w| {
                w.note(Decision {
                    at_ms: now,
                    model: None,
                    directive: None,
                    reason: format!("could not push the new routes to the nodes: {e}"),
                })
            });
        }
    }
    ctx.state_mut(|w| {
        w.s.policy_state = next;
        w.s.last_view = Some(view);
    });
    for d in decisions {
        let outcome = match &d.directive {
            Some(Directive::Load { model, node }) => ctx
                .execute_activity(
                    NodeScalingActivities::load_model,
                    model.clone(),
                    node_activity(node),
                )
                .await
                .err()
                .map(|e| format!("load of {model} on {node} failed: {e}")),
            Some(Directive::Unload { model, node }) => ctx
                .execute_activity(
                    NodeScalingActivities::unload_model,
                    model.clone(),
                    node_activity(node),
                )
                .await
                .err()
                .map(|e| format!("unload of {model} on {node} failed: {e}")),
            _ => None,
        };
        let model = d.model.clone();
        ctx.state_mut(|w| w.note(d));
        if let Some(reason) = outcome {
            ctx.state_mut(|w| {
                w.note(Decision {
                    at_ms: now,
                    model,
                    directive: None,
                    reason,
                })
            });
        }
    }
}

#[workflow_methods]
impl ResourceManagementWorkflow {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: ScalingState) -> WorkflowResult<()> {
        ctx.state_mut(|w| w.s = input);
        loop {
            let collected = ctx
                .execute_activity(
                    ScalingActivities::collect,
                    (),
                    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(20))
                        .retry_policy(
                            RetryPolicy::builder()
                                .maximum_attempts(3)
                                .maximum_interval(Duration::from_secs(2))
                                .build(),
                        )
                        .build(),
                )
                .await;
            let now = at_ms(ctx);
            match collected {
                Ok(view) => tick(ctx, view, now).await,
                Err(e) => ctx.state_mut(|w| {
                    w.note(Decision {
                        at_ms: now,
                        model: None,
                        directive: None,
                        reason: format!("could not collect the cluster's snapshots: {e}"),
                    })
                }),
            }
            let ticks = ctx.state_mut(|w| {
                w.s.ticks += 1;
                w.wake = false;
                w.s.ticks
            });
            if ticks.is_multiple_of(TICKS_PER_RUN) || ctx.continue_as_new_suggested() {
                let carried = ctx.state(|w| w.s.clone());
                ctx.continue_as_new(carried, ContinueAsNewOptions::default())?;
            }
            // Sleep until the next tick, or until an admin signal wants a tick now.
            let tick = Duration::from_secs(ctx.state(|w| w.s.tick_secs.max(1)));
            let timer = ctx.timer(tick);
            let woken = ctx.wait_condition(|w| w.wake);
            futures::pin_mut!(timer, woken);
            futures::future::select(timer, woken).await;
        }
    }

    #[signal]
    pub fn set_policy(&mut self, ctx: &mut SyncWorkflowContext<Self>, policy: Policy) {
        let now = Self::now_of(ctx);
        self.s.policy = policy;
        self.admin_note(now, "admin: policy changed".into());
    }

    #[signal]
    pub fn set_replicas(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        change: (ModelName, Option<u32>),
    ) {
        let now = Self::now_of(ctx);
        let (model, n) = change;
        let reason = match n {
            Some(n) => {
                self.s.overrides.replicas.insert(model.clone(), n);
                format!("admin: {model} fixed at {n} replicas")
            }
            None => {
                self.s.overrides.replicas.remove(&model);
                format!("admin: {model} back to its configured replica bounds")
            }
        };
        self.admin_note(now, reason);
    }

    #[signal]
    pub fn pin(&mut self, ctx: &mut SyncWorkflowContext<Self>, pin: (ModelName, Vec<NodeName>)) {
        let now = Self::now_of(ctx);
        let (model, nodes) = pin;
        let reason = format!("admin: {model} pinned to {nodes:?}");
        if nodes.is_empty() {
            self.s.overrides.pinned.remove(&model);
        } else {
            self.s.overrides.pinned.insert(model, nodes);
        }
        self.admin_note(now, reason);
    }

    #[signal]
    pub fn set_drained(&mut self, ctx: &mut SyncWorkflowContext<Self>, change: (NodeName, bool)) {
        let now = Self::now_of(ctx);
        let (node, drained) = change;
        if drained {
            self.s.overrides.drained.insert(node.clone());
        } else {
            self.s.overrides.drained.remove(&node);
        }
        let verb = if drained { "drained" } else { "undrained" };
        self.admin_note(now, format!("admin: node {node} {verb}"));
    }

    #[signal]
    pub fn set_paused(&mut self, ctx: &mut SyncWorkflowContext<Self>, paused: bool) {
        let now = Self::now_of(ctx);
        self.s.overrides.paused = paused;
        let verb = if paused { "paused" } else { "resumed" };
        self.admin_note(now, format!("admin: autoscaling {verb}"));
    }

    #[query]
    pub fn decisions(&self, _ctx: &WorkflowContextView) -> Vec<Decision> {
        self.s.log.iter().cloned().collect()
    }

    /// Where each model's asks go now (a plan reads this when the routes its node heard have
    /// grown old).
    #[query]
    pub fn routes(&self, _ctx: &WorkflowContextView) -> BTreeMap<ModelName, Route> {
        routes_of(&self.s.policy_state)
    }

    #[query]
    pub fn status(&self, _ctx: &WorkflowContextView) -> ScalingStatus {
        ScalingStatus {
            policy: self.s.policy.clone(),
            overrides: self.s.overrides.clone(),
            routes: routes_of(&self.s.policy_state),
            last_view: self.s.last_view.clone(),
            ticks: self.s.ticks,
        }
    }
}

/// The scaling loop's current routes, for the plan activity (see [`RoutesQuery`]).
pub fn routes_query() -> RoutesQuery {
    std::sync::Arc::new(|client: temporalio_client::Client| {
        Box::pin(async move {
            client
                .get_workflow_handle::<ResourceManagementWorkflow>(RESOURCE_WORKFLOW_ID)
                .query(ResourceManagementWorkflow::routes, (), Default::default())
                .await
                .ok()
        })
    })
}
