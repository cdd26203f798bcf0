//! `create_task.lua`: a task is created from its request, or found if it
//! exists; its roots are leased and it is indexed, in the same call.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tasker_protocol::{ParentStep, TaskStatus, TaskTemplate};
use uuid::Uuid;

use super::keys::StepRef;
use super::script::LuaScript;
use super::{Store, millis_of};
use crate::Error;
use crate::batch::Batched;

static CREATE_TASK: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("create_task", 3, include_str!("create_task.lua")));

/// A task request, as the store takes it.
#[derive(Debug, Clone, Copy)]
pub struct NewTask<'a> {
    /// The task's id.
    pub task_id: Uuid,
    /// Its template.
    pub template: &'a TaskTemplate,
    /// Its context, JSON.
    pub context: &'a str,
    /// The requester's reply queue and correlation id, if it wants a reply.
    pub reply: Option<(&'a str, &'a str)>,
    /// The request's id, which the replies name.
    pub request_id: Option<Uuid>,
    /// Whether a task that exists must have this context, or the request
    /// is refused ([`Created::Conflict`]): for a request with an
    /// idempotency key.
    pub same_context: bool,
    /// The W3C traceparent of the span that accepts the task.
    pub traceparent: Option<&'a str>,
    /// For a child task, the step that waits for it.
    pub parent: Option<&'a ParentStep>,
    /// Whether the request was delivered before.
    pub redelivered: bool,
}

/// One task request, prepared by [`Store::prepare_task`] for
/// [`Store::create_tasks`], or for a [`Batcher`](crate::batch::Batcher).
#[derive(Debug)]
pub struct TaskToCreate {
    task_id: Uuid,
    keys: [String; 3],
    args: Args,
}

/// The arguments of one item, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args {
    task_id: Uuid,
    namespace: String,
    name: String,
    version: String,
    context: String,
    now: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<Uuid>,
    same_context: bool,
    redelivered: bool,
    steps: Vec<StepArgs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    lease_prefix: String,
    index_horizon: i64,
}

#[derive(Debug, Serialize)]
struct StepArgs {
    name: String,
    waiting: usize,
    lease_ms: u64,
}

/// One item's reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    created: bool,
    status: TaskStatus,
    #[serde(default)]
    publish: Vec<usize>,
    #[serde(default)]
    conflict: bool,
}

/// What [`Store::create_tasks`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// A new task: publish these root steps.
    New {
        /// Root steps, now enqueued at attempt 1.
        roots: Vec<usize>,
    },
    /// The task existed already.
    Existing {
        /// Where it stands.
        status: TaskStatus,
        /// Roots to publish again (only for a redelivered request).
        republish: Vec<usize>,
    },
    /// The task exists with another context: the request was refused, and
    /// nothing was written.
    Conflict {
        /// Where the existing task stands.
        status: TaskStatus,
    },
}

impl From<Reply> for Created {
    fn from(reply: Reply) -> Self {
        if reply.created {
            Self::New { roots: reply.publish }
        } else if reply.conflict {
            Self::Conflict { status: reply.status }
        } else {
            Self::Existing {
                status: reply.status,
                republish: reply.publish,
            }
        }
    }
}

impl Store {
    /// Prepares the creation of `task`, or the finding of it if it exists:
    /// the call, which [`Store::create_tasks`] makes, records its requester
    /// either way, and its parent step as the step it reports to. Each root
    /// is leased for `lease(root)`.
    #[must_use]
    pub fn prepare_task(&self, task: NewTask<'_>, lease: impl Fn(usize) -> Duration) -> TaskToCreate {
        let template = task.template;
        let now = Utc::now().timestamp_millis();
        let steps = template
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| StepArgs {
                name: step.name.clone(),
                waiting: template.dag.parents(i).len(),
                lease_ms: millis_of(lease(i)),
            })
            .collect();
        let args = Args {
            task_id: task.task_id,
            namespace: template.namespace.clone(),
            name: template.name.clone(),
            version: template.version.to_string(),
            context: task.context.to_owned(),
            now,
            reply_queue: task.reply.map(|(queue, _)| queue.to_owned()),
            correlation_id: task.reply.map(|(_, correlation)| correlation.to_owned()),
            request_id: task.reply.and(task.request_id),
            same_context: task.same_context,
            redelivered: task.redelivered,
            steps,
            traceparent: task.traceparent.map(str::to_owned),
            parent: task
                .parent
                .map(|p| serde_json::to_string(p).expect("a parent step always serializes")),
            lease_prefix: StepRef::prefix(task.task_id, template),
            index_horizon: now - i64::try_from(self.index_horizon().as_millis()).unwrap_or(i64::MAX / 4),
        };
        TaskToCreate {
            task_id: task.task_id,
            keys: [
                self.keys.task(task.task_id),
                self.keys.leases_of(task.task_id, &template.namespace),
                self.keys.index(self.keys.shard_of(task.task_id)),
            ],
            args,
        }
    }

    /// Creates (or finds) `tasks` in one call, in order, as if each were
    /// created alone.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails: then none, some or all
    /// of the tasks may have been created. The inner error is
    /// [`Error::ScriptReply`] for a task whose reply cannot be read.
    pub async fn create_tasks(&self, tasks: &[TaskToCreate]) -> Result<Vec<Result<Created, Error>>, Error> {
        let replies = CREATE_TASK
            .call::<_, Reply>(self, tasks.iter().map(|t| (&t.keys[..], &t.args)))
            .await?;
        Ok(replies.into_iter().map(|r| r.map(Created::from)).collect())
    }
}

impl Batched for TaskToCreate {
    type Target = Store;
    type Output = Created;

    fn task_id(&self) -> Uuid {
        self.task_id
    }

    /// The script then hands back the roots to publish again.
    fn set_redelivered(&mut self) {
        self.args.redelivered = true;
    }

    async fn call(store: &Store, items: &[Self]) -> Result<Vec<Result<Created, Error>>, Error> {
        store.create_tasks(items).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let args = Args {
            task_id: Uuid::nil(),
            namespace: "ns".into(),
            name: "n".into(),
            version: "1.0.0".into(),
            context: "{}".into(),
            now: 1,
            reply_queue: Some("q".into()),
            correlation_id: Some("c".into()),
            request_id: Some(Uuid::nil()),
            same_context: true,
            redelivered: false,
            steps: Vec::new(),
            traceparent: Some("tp".into()),
            parent: Some("{}".into()),
            lease_prefix: "p|".into(),
            index_horizon: 0,
        };
        let reply = Reply {
            created: true,
            status: TaskStatus::Running,
            publish: vec![0],
            conflict: false,
        };
        contract::check(&CREATE_TASK, &args, &reply);
    }

    #[test]
    fn replies_read_as_new_or_existing_tasks() {
        let new: Reply =
            serde_json::from_str(r#"{"created":true,"status":"running","publish":[0,2]}"#).unwrap();
        assert_eq!(Created::from(new), Created::New { roots: vec![0, 2] });
        let old: Reply = serde_json::from_str(r#"{"created":false,"status":"failed"}"#).unwrap();
        assert_eq!(
            Created::from(old),
            Created::Existing {
                status: TaskStatus::Failed,
                republish: vec![]
            }
        );
        let conflict: Reply =
            serde_json::from_str(r#"{"created":false,"status":"running","conflict":true}"#).unwrap();
        assert_eq!(
            Created::from(conflict),
            Created::Conflict {
                status: TaskStatus::Running
            }
        );
        assert!(serde_json::from_str::<Reply>(r#"{"created":true,"status":"running","roots":[0]}"#).is_err());
    }
}
