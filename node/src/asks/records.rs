//! Asks as Temporal records them, for the REST API: who owns an ask (its memo), where it stands
//! (describe + the `stage` query + the generate activity's heartbeat), and a user's history
//! (visibility, filtered by the `OrreryUser` search attribute where the namespace has it).

use super::{AskEnd, AskError, AskService};
use crate::activities::Progress;
use crate::protocol::{ASK_WORKFLOW_PREFIX, NodeId, RequestId, USER_SEARCH_ATTRIBUTE};
use crate::workflows::ask::{AskInput, AskStage, AskWorkflow};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use temporalio_client::{
    Client, WorkflowCountOptions, WorkflowDescribeOptions, WorkflowExecutionDescription,
    WorkflowExecutionStatus, WorkflowListOptions, WorkflowQueryOptions, tonic,
};
use temporalio_common::MemoValues;
use temporalio_common::protos::temporal::api::enums::v1::{IndexedValueType, PendingActivityState};
use temporalio_common::protos::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, ListSearchAttributesRequest,
};
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributes};

const USER_KEY: SearchAttributeKey<String> = SearchAttributeKey::keyword(USER_SEARCH_ATTRIBUTE);

/// Memo keys of an ask's workflow.
pub const MEMO_USER: &str = "user";
pub const MEMO_MODEL: &str = "model";

/// Most asks one history page returns.
pub const MAX_HISTORY: usize = 100;

/// Whether this namespace has the `OrreryUser` search attribute (set once at start-up).
#[derive(Clone, Debug, Default)]
pub struct UserSearch(Arc<AtomicBool>);

impl UserSearch {
    pub fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// The search attributes an ask of `user` starts with.
    pub fn attributes(&self, user: &str) -> Option<SearchAttributes> {
        self.enabled()
            .then(|| SearchAttributes::new([USER_KEY.value_set(user.to_string())]))
    }
}

/// The memo an ask's workflow carries: its owner and model, readable from describe and list.
pub fn memo(input: &AskInput) -> MemoValues {
    let mut m = MemoValues::new();
    m.insert(MEMO_USER, input.user.clone());
    m.insert(MEMO_MODEL, input.model.to_string());
    m
}

pub use crate::workflows::steps::temporal_priority;

/// Registers the `OrreryUser` keyword search attribute if the namespace lacks it, and waits
/// until the server lists it. Fails where the operator API is closed (Temporal Cloud: create it
/// there with `tcld`), and history then falls back to filtering on the memo.
pub async fn ensure_user_attribute(client: &Client, namespace: &str) -> Result<(), String> {
    let mut ops = client.connection().operator_service();
    if user_attribute_listed(ops.as_mut(), namespace).await? {
        return Ok(());
    }
    let req = AddSearchAttributesRequest {
        search_attributes: [(
            USER_SEARCH_ATTRIBUTE.to_string(),
            IndexedValueType::Keyword as i32,
        )]
        .into(),
        namespace: namespace.to_string(),
    };
    if let Err(e) = ops.add_search_attributes(tonic::Request::new(req)).await
        // Another node may have added it first.
        && e.code() != tonic::Code::AlreadyExists
    {
        return Err(e.message().to_string());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if user_attribute_listed(ops.as_mut(), namespace).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the search attribute was added but never listed".into())
}

async fn user_attribute_listed(
    ops: &mut dyn temporalio_client::grpc::OperatorService,
    namespace: &str,
) -> Result<bool, String> {
    let req = ListSearchAttributesRequest {
        namespace: namespace.to_string(),
    };
    ops.list_search_attributes(tonic::Request::new(req))
        .await
        .map(|r| {
            r.into_inner()
                .custom_attributes
                .contains_key(USER_SEARCH_ATTRIBUTE)
        })
        .map_err(|e| e.message().to_string())
}

pub fn rfc3339(t: SystemTime) -> String {
    prost_types::Timestamp::from(t).to_string()
}

/// Where an ask stands, as `GET /api/asks/{id}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AskStatus {
    pub id: RequestId,
    pub user: String,
    pub model: Option<String>,
    /// The workflow's status: running, completed, failed, cancelled, terminated, timed_out.
    pub status: &'static str,
    /// planning, queued, generating, done, failed, cancelled.
    pub stage: &'static str,
    pub node: Option<NodeId>,
    pub attempt: Option<u32>,
    /// While waiting: running asks started before this one, cluster-wide (0 = next).
    pub queue_position: Option<u64>,
    /// While generating: the answer so far, from the generate activity's last heartbeat.
    pub text_so_far: Option<String>,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    pub workflow_id: RequestId,
    pub workflow_url: Option<String>,
}

/// One line of a user's history.
#[derive(Clone, Debug, Serialize)]
pub struct AskSummary {
    pub id: String,
    pub model: Option<String>,
    pub status: &'static str,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
}

pub fn status_name(s: WorkflowExecutionStatus) -> &'static str {
    match s {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "completed",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "cancelled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::TimedOut => "timed_out",
        WorkflowExecutionStatus::ContinuedAsNew => "continued_as_new",
        WorkflowExecutionStatus::Paused => "paused",
        _ => "unknown",
    }
}

/// An ask's workflow as described, with its owner: 404 for no such ask, 403 for another's.
pub struct Described {
    pub desc: temporalio_client::WorkflowExecutionDescription,
    pub user: String,
    pub model: Option<String>,
}

impl Described {
    pub fn status(&self) -> WorkflowExecutionStatus {
        self.desc.status()
    }
}

/// Temporal's description of workflow `id` (an ask or any other kind): `None` when Temporal has
/// no such workflow; an error (Temporal unreachable) as its message.
pub async fn describe_execution(
    client: &Client,
    id: &str,
) -> Result<Option<WorkflowExecutionDescription>, String> {
    // The handle's type does not matter to a describe.
    match client
        .get_workflow_handle::<AskWorkflow>(id.to_string())
        .describe(WorkflowDescribeOptions::default())
        .await
    {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.to_string().to_lowercase().contains("not found") => Ok(None),
        Err(e) => Err(format!("Temporal did not describe {id}: {e}")),
    }
}

/// Describes the ask `id` and checks that `user` owns it.
pub async fn describe_owned(
    asks: &AskService,
    id: &RequestId,
    user: &str,
) -> Result<Described, AskError> {
    let not_found = || AskError::UnknownRequest(id.clone());
    if !id.as_str().starts_with(ASK_WORKFLOW_PREFIX) {
        return Err(not_found());
    }
    let desc = describe_execution(&asks.client, id.as_str())
        .await
        .map_err(AskError::Unavailable)?
        .ok_or_else(not_found)?;
    if desc.workflow_type() != AskWorkflow::name() {
        return Err(not_found());
    }
    let memo = desc.memo();
    let owner = memo
        .get::<String>(MEMO_USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| crate::users::UserId::ANONYMOUS.to_string());
    if owner != user {
        return Err(AskError::Forbidden(id.clone()));
    }
    let model = memo.get::<String>(MEMO_MODEL).ok().flatten();
    Ok(Described {
        desc,
        user: owner,
        model,
    })
}

/// The live picture of a described ask.
pub async fn status(asks: &AskService, id: &RequestId, d: &Described) -> AskStatus {
    let status = d.status();
    let mut s = AskStatus {
        id: id.clone(),
        user: d.user.clone(),
        model: d.model.clone(),
        status: status_name(status),
        stage: match status {
            WorkflowExecutionStatus::Completed => "done",
            WorkflowExecutionStatus::Canceled => "cancelled",
            WorkflowExecutionStatus::Running => "planning",
            _ => "failed",
        },
        node: None,
        attempt: None,
        queue_position: None,
        text_so_far: None,
        created_at: d.desc.start_time().map(rfc3339),
        closed_at: d.desc.close_time().map(rfc3339),
        workflow_id: id.clone(),
        workflow_url: asks.workflow_url(id),
    };
    if status == WorkflowExecutionStatus::Completed {
        // A closed workflow's result is read from its history, without waiting.
        if let AskEnd::Done(o) = asks.outcome(id).await {
            s.node = Some(o.node);
            s.attempt = Some(o.attempts);
        }
    }
    if status == WorkflowExecutionStatus::Running {
        running_picture(asks, id, d, &mut s).await;
    }
    s
}

/// Where a running ask stands: its stage (from the workflow's query), its pending generate
/// activity (queued, or the text heartbeated so far) and its place among running asks.
async fn running_picture(asks: &AskService, id: &RequestId, d: &Described, s: &mut AskStatus) {
    let handle = asks
        .client
        .get_workflow_handle::<AskWorkflow>(id.to_string());
    // A query needs a worker to answer; without one, describe alone has to do.
    let stage = tokio::time::timeout(
        Duration::from_secs(5),
        handle.query(AskWorkflow::stage, (), WorkflowQueryOptions::default()),
    )
    .await
    .ok()
    .and_then(Result::ok);
    if let Some(AskStage::Generating { node, attempt }) = stage {
        s.stage = "generating";
        s.node = Some(node);
        s.attempt = Some(attempt);
    }
    let generate = d.desc.raw().pending_activities.iter().find(|a| {
        a.activity_type
            .as_ref()
            .is_some_and(|t| t.name.ends_with("generate"))
    });
    if let Some(a) = generate {
        if a.state == PendingActivityState::Scheduled as i32 {
            s.stage = "queued";
        }
        s.text_so_far = a
            .heartbeat_details
            .as_ref()
            // Already decrypted: describe runs the client's codec over pending activities.
            .and_then(|p| p.payloads.first())
            .and_then(|p| serde_json::from_slice::<Progress>(&p.data).ok())
            .map(|p| p.text);
    }
    if matches!(s.stage, "planning" | "queued")
        && let Some(start) = d.desc.start_time()
    {
        let q = format!(
            "WorkflowType = '{}' AND ExecutionStatus = 'Running' AND StartTime < '{}'",
            AskWorkflow::name(),
            rfc3339(start)
        );
        s.queue_position = asks
            .client
            .count_workflows(q, WorkflowCountOptions::default())
            .await
            .ok()
            .map(|c| c.count() as u64);
    }
}

/// The newest asks of `user`, newest first.
pub async fn history(
    asks: &AskService,
    user: &str,
    limit: usize,
) -> Result<Vec<AskSummary>, AskError> {
    let listed = list_owned(asks, &[AskWorkflow::name()], user, limit, None)
        .await
        .map_err(AskError::Unavailable)?;
    Ok(listed.into_iter().map(|(s, _)| s).collect())
}

/// The newest workflows of `user` whose type is one of `types`, newest first, at most `limit`
/// (capped at [`MAX_HISTORY`]): found by the user search attribute where Temporal has it, else
/// filtered by the memo over a bounded scan. With each, the memo value under `memo_key`.
pub async fn list_owned(
    asks: &AskService,
    types: &[&str],
    user: &str,
    limit: usize,
    memo_key: Option<&str>,
) -> Result<Vec<(AskSummary, Option<String>)>, String> {
    let limit = limit.clamp(1, MAX_HISTORY);
    let types = types
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let by_attribute = asks.user_search.enabled();
    let query = if by_attribute {
        // A quote would end the string in the query.
        let user = user.replace('\'', "");
        format!("WorkflowType IN ({types}) AND {USER_SEARCH_ATTRIBUTE} = '{user}'")
    } else {
        format!("WorkflowType IN ({types})")
    };
    // Without the attribute the memo filters; the scan is bounded.
    let scan = if by_attribute { limit } else { limit * 20 };
    let mut stream = asks
        .client
        .list_workflows(query, WorkflowListOptions::builder().limit(scan).build());
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let w = item.map_err(|e| format!("Temporal visibility failed: {e}"))?;
        let memo = w.memo();
        if memo.get::<String>(MEMO_USER).ok().flatten().as_deref() != Some(user) {
            continue;
        }
        let extra = memo_key.and_then(|k| memo.get::<String>(k).ok().flatten());
        out.push((
            AskSummary {
                id: w.id().to_string(),
                model: memo.get::<String>(MEMO_MODEL).ok().flatten(),
                status: status_name(w.status()),
                created_at: w.start_time().map(rfc3339),
                closed_at: w.close_time().map(rfc3339),
            },
            extra,
        ));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Priority;

    #[test]
    fn priorities_map_to_temporal_keys() {
        for (p, key) in [
            (Priority::High, 1),
            (Priority::Normal, 3),
            (Priority::Low, 5),
        ] {
            assert_eq!(temporal_priority(&p).priority_key, Some(key));
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.250Z");
    }

    #[test]
    fn search_attributes_only_when_the_namespace_has_them() {
        let s = UserSearch::default();
        assert!(s.attributes("alice").is_none());
        s.set(true);
        assert_eq!(s.attributes("alice").unwrap().len(), 1);
    }
}
