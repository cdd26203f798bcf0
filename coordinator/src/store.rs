//! The coordinator's state in Redis: one hash per task, changed only by the
//! Lua scripts beside this file, and per namespace a sorted set of leases
//! and one of scheduled retries.
//!
//! A task's hash carries the hash tag `{<task_id>}`. The scripts that create
//! a task and record a result also write its leases, its retry and the task
//! index, so that each costs one round trip and is atomic; on Redis Cluster
//! those keys would need one slot, and Cluster is not supported.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde_json::value::RawValue;
use tasker_protocol::{
    PROTOCOL_VERSION, ParentStep, StepFailure, StepReport, StepState, TaskFinished, TaskStatus, TaskTemplate,
};
use uuid::Uuid;

use crate::Error;
use crate::batch::Batched;

/// The sorted set of scheduled retries of `namespace`, scored by when each
/// is due. One per namespace, so that a coordinator claims only retries of
/// templates it loads.
#[must_use]
pub fn schedule_key(namespace: &str) -> String {
    format!("tasker:schedule:{namespace}")
}

/// The key of a task's hash.
#[must_use]
pub fn task_key(task_id: Uuid) -> String {
    format!("tasker:{{{task_id}}}")
}

fn task_script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/common.lua")))
}

static CREATE_TASK: LazyLock<Script> = LazyLock::new(|| task_script(include_str!("lua/create_task.lua")));
static RECORD_RESULT: LazyLock<Script> = LazyLock::new(|| task_script(include_str!("lua/record_result.lua")));
static DISPATCH_RETRY: LazyLock<Script> =
    LazyLock::new(|| task_script(include_str!("lua/dispatch_retry.lua")));
static OPERATE: LazyLock<Script> = LazyLock::new(|| task_script(include_str!("lua/operate.lua")));
static SUMMARY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/summary.lua")));
static WAIT_CHILD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/wait_child.lua")));
static CLAIM_DUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim_due.lua")));

/// A connection to the store. Cloning shares the connection, which
/// reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    url: String,
    retention: Duration,
}

/// What [`Store::create_task`] found.
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
}

/// How a step outcome is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The step completed with a result.
    Completed,
    /// The step failed retryably: it is retried after its backoff, or
    /// after `after` when the handler asked for it, if an attempt is left.
    Retry {
        /// The delay the handler asked for.
        after: Option<Duration>,
    },
    /// The step failed for good.
    Failed,
}

/// How the store took a step result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This result moved the task on.
    Applied,
    /// The same result was applied before.
    Duplicate,
    /// The result is for an attempt that is no longer current.
    Stale,
    /// No such task: it never existed or has expired.
    UnknownTask,
}

/// What a recorded result asks the coordinator to do next.
#[derive(Debug)]
pub struct Recorded {
    /// How the result was taken.
    pub verdict: Verdict,
    /// The task's status afterwards.
    pub status: TaskStatus,
    /// Steps now enqueued at attempt 1, to publish.
    pub ready: Vec<usize>,
    /// A retry to put on the schedule.
    pub retry_due: Option<DateTime<Utc>>,
    /// The inputs the ready steps' messages carry.
    pub inputs: Inputs,
    /// The task as it ended, when it has just finished (or finished before
    /// and this was a redelivery): the report to send.
    pub finished: Option<TaskSnapshot>,
}

/// One item of a batched script call: one task's keys and arguments. The
/// scripts take each item's arguments after their count, so that items of
/// any length can share a call.
#[derive(Debug)]
struct ScriptItem {
    task_id: Uuid,
    /// The task hash, then two keys the script names.
    keys: [String; 3],
    /// The arguments the script names.
    args: Vec<String>,
    /// Which argument is the script's redelivery flag ('1' or '0').
    redelivered_arg: usize,
}

/// One task request, prepared by [`Store::prepare_task`] for
/// [`Store::create_tasks`], or for a [`Batcher`](crate::batch::Batcher).
#[derive(Debug)]
pub struct TaskToCreate(ScriptItem);

/// One step result, prepared by [`Store::prepare_result`] for
/// [`Store::record_results`], or for a [`Batcher`](crate::batch::Batcher).
#[derive(Debug)]
pub struct ResultToRecord(ScriptItem);

impl Batched for TaskToCreate {
    type Output = Created;

    fn task_id(&self) -> Uuid {
        self.0.task_id
    }

    /// The script then hands back the roots to publish again.
    fn set_redelivered(&mut self) {
        self.0.args[self.0.redelivered_arg] = "1".to_owned();
    }

    async fn call(store: &Store, items: &[Self]) -> Result<Vec<Result<Created, Error>>, Error> {
        store.create_tasks(items).await
    }
}

impl Batched for ResultToRecord {
    type Output = Recorded;

    fn task_id(&self) -> Uuid {
        self.0.task_id
    }

    /// The script then hands back the result's effects rather than calling
    /// it a duplicate.
    fn set_redelivered(&mut self) {
        self.0.args[self.0.redelivered_arg] = "1".to_owned();
    }

    async fn call(store: &Store, items: &[Self]) -> Result<Vec<Result<Recorded, Error>>, Error> {
        store.record_results(items).await
    }
}

/// The context and the completed results that step-ready messages carry,
/// as the JSON text the store holds.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The task context.
    pub context: String,
    /// Completed results by step index.
    pub results: HashMap<usize, String>,
}

/// One attempt of one step, as the schedules name it: a member of a
/// namespace's retry schedule (`attempt` is the one that failed) or of its
/// lease set (`attempt` is the one running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// The sorted-set member: `<task_id>|<namespace>|<name>|<version>|<step>|<attempt>`.
    pub member: String,
    /// The task.
    pub task_id: Uuid,
    /// The template, as `namespace`, `name`, `version`.
    pub template: (String, String, String),
    /// The step index.
    pub step: usize,
    /// The attempt.
    pub attempt: u32,
    /// The W3C `traceparent` the entry carries, for a retry: the next
    /// attempt joins the task's trace.
    pub trace: Option<String>,
}

impl StepRef {
    /// Names attempt `attempt` of step `step` of a task of `template`.
    #[must_use]
    pub fn new(task_id: Uuid, template: &TaskTemplate, step: usize, attempt: u32) -> Self {
        let member = format!("{}{step}|{attempt}", Self::prefix(task_id, template));
        let template = (
            template.namespace.clone(),
            template.name.clone(),
            template.version.to_string(),
        );
        Self {
            member,
            task_id,
            template,
            step,
            attempt,
            trace: None,
        }
    }

    /// What every member for a task of `template` starts with: the
    /// scripts append `<step>|<attempt>`.
    #[must_use]
    pub fn prefix(task_id: Uuid, template: &TaskTemplate) -> String {
        format!(
            "{task_id}|{}|{}|{}|",
            template.namespace, template.name, template.version
        )
    }

    /// The same entry, carrying `traceparent` in its member.
    #[must_use]
    pub fn with_trace(mut self, traceparent: Option<String>) -> Self {
        if let Some(tp) = traceparent {
            self.member = format!("{}|{tp}", self.member);
            self.trace = Some(tp);
        }
        self
    }

    fn parse(member: String) -> Option<Self> {
        let parts: Vec<&str> = member.split('|').collect();
        let (&[task_id, ns, name, version, step, attempt], trace) = (match parts.len() {
            6 => (&parts[..], None),
            7 => (&parts[..6], Some(parts[6].to_owned())),
            _ => return None,
        }) else {
            return None;
        };
        Some(Self {
            task_id: task_id.parse().ok()?,
            template: (ns.to_owned(), name.to_owned(), version.to_owned()),
            step: step.parse().ok()?,
            attempt: attempt.parse().ok()?,
            trace,
            member,
        })
    }
}

/// A change to a namespace's retry schedule or lease set. Several are sent
/// to Redis together, in one round trip.
#[derive(Debug, Clone)]
pub enum Bookkeeping {
    /// The attempt is running; if no result comes by the deadline, it is
    /// treated as a retryable `timeout`.
    Lease(StepRef, DateTime<Utc>),
    /// The attempt has a result; its lease is over.
    EndLease(StepRef),
    /// The failed attempt is retried at the given time.
    Retry(StepRef, DateTime<Utc>),
    /// The retry was published; it leaves the schedule.
    EndRetry(StepRef),
}

/// An operator's change to a task with failed steps.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// Failed steps back to pending, all of them or only `step`.
    Retry {
        /// Only this step.
        step: Option<usize>,
    },
    /// No step starts any more; the task ends cancelled once the running
    /// ones have finished.
    Cancel,
    /// The failed `step` completed by hand with `result` (JSON).
    Resolve {
        /// The step.
        step: usize,
        /// Its result.
        result: &'a str,
    },
}

/// What [`Store::operate`] did.
#[derive(Debug)]
pub enum Operated {
    /// Nothing: the task is not in a state the operation applies to.
    Refused(String),
    /// Applied.
    Done {
        /// The task's status afterwards.
        status: TaskStatus,
        /// Steps now enqueued, to publish, each at its `a:i` attempt.
        ready: Vec<(usize, u32)>,
        /// What their messages carry.
        inputs: Inputs,
    },
}

/// Every task by creation time (unix ms), newest last, for `tasker list`.
/// Entries of tasks that expired are dropped as `list` meets them, and
/// anything older than twice the retention when a task is indexed.
pub const TASK_INDEX: &str = "tasker:tasks";

/// One line of `tasker list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskSummary {
    /// The task.
    pub task_id: Uuid,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub name: String,
    /// The template's version.
    pub version: String,
    /// Where the task stands.
    pub status: TaskStatus,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it ended, if it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// Steps in all.
    pub steps: usize,
    /// Steps that will change no more (completed, failed or blocked).
    pub steps_done: usize,
}

/// The sorted set of running attempts of `namespace`, scored by their lease
/// deadline.
#[must_use]
pub fn lease_key(namespace: &str) -> String {
    format!("tasker:leases:{namespace}")
}

impl Store {
    /// Connects to Redis at `url` (`redis://` or `rediss://`).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis cannot be reached.
    pub async fn connect(url: &str, retention: Duration) -> Result<Self, Error> {
        let redacted = tasker_worker::broker::redact_url(url);
        let fail = |source| Error::Redis {
            url: redacted.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(fail)?;
        Ok(Self {
            conn,
            url: redacted,
            retention,
        })
    }

    fn error(&self, source: redis::RedisError) -> Error {
        Error::Redis {
            url: self.url.clone(),
            source,
        }
    }

    /// Prepares the creation of a task, or the finding of it if it exists:
    /// the call, which [`Store::create_tasks`] makes, records `reply` as a
    /// requester either way, and `parent` as the step it reports to.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn prepare_task(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        context: &str,
        reply: Option<(&str, &str)>,
        redelivered: bool,
        traceparent: Option<&str>,
        parent: Option<&ParentStep>,
        lease: impl Fn(usize) -> Duration,
    ) -> TaskToCreate {
        let (queue, correlation) = reply.unwrap_or(("", ""));
        let now = Utc::now().timestamp_millis();
        let mut args = vec![
            template.namespace.clone(),
            template.name.clone(),
            template.version.to_string(),
            context.to_owned(),
            now.to_string(),
            queue.to_owned(),
            correlation.to_owned(),
            if redelivered { "1" } else { "0" }.to_owned(),
            template
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            traceparent.unwrap_or_default().to_owned(),
            parent
                .map(|p| serde_json::to_string(p).expect("a parent step always serializes"))
                .unwrap_or_default(),
            task_id.to_string(),
            StepRef::prefix(task_id, template),
            (now - self.index_horizon_ms()).to_string(),
            (0..template.steps.len())
                .map(|s| lease(s).as_millis().to_string())
                .collect::<Vec<_>>()
                .join(","),
        ];
        args.extend((0..template.steps.len()).map(|step| template.dag.parents(step).len().to_string()));
        TaskToCreate(ScriptItem {
            task_id,
            keys: [
                task_key(task_id),
                lease_key(&template.namespace),
                TASK_INDEX.to_owned(),
            ],
            args,
            redelivered_arg: 7,
        })
    }

    /// Creates (or finds) `tasks` in one call, in order, as if each were
    /// created alone.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails: then none, some or all
    /// of the tasks may have been created. The inner error is
    /// [`Error::CorruptState`] for a task whose reply cannot be read.
    pub async fn create_tasks(&self, tasks: &[TaskToCreate]) -> Result<Vec<Result<Created, Error>>, Error> {
        let replies = self
            .call_batch(&CREATE_TASK, "create_task", tasks.iter().map(|t| &t.0))
            .await?;
        Ok(replies
            .into_iter()
            .map(|(task_id, reply)| parse_created(task_id, &reply))
            .collect())
    }

    /// Calls `script` (named `name`) once for all of `items`, and gives back
    /// each item's task and reply, in order.
    async fn call_batch<'a>(
        &self,
        script: &Script,
        name: &str,
        items: impl ExactSizeIterator<Item = &'a ScriptItem> + Clone,
    ) -> Result<Vec<(Uuid, Vec<String>)>, Error> {
        let mut call = script.prepare_invoke();
        for item in items.clone() {
            for key in &item.keys {
                call.key(key);
            }
            call.arg(item.args.len());
            for arg in &item.args {
                call.arg(arg);
            }
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Vec<String>> = call.invoke_async(&mut conn).await.map_err(|e| self.error(e))?;
        if replies.len() != items.len() {
            return Err(Error::CorruptState {
                task_id: items.clone().next().map_or_else(Uuid::nil, |i| i.task_id),
                detail: format!(
                    "{name} returned {} replies for {} items",
                    replies.len(),
                    items.len()
                ),
            });
        }
        Ok(items.map(|i| i.task_id).zip(replies).collect())
    }

    /// Prepares the recording of how attempt `attempt` of `step` ended: the
    /// call, which [`Store::record_results`] makes, also ends the attempt's
    /// lease, leases the children it makes ready (each for `lease(child)`),
    /// and puts a retry on the schedule.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn prepare_result(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        step: usize,
        attempt: u32,
        applied: Applied,
        payload: String,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        redelivered: bool,
        traceparent: Option<&str>,
        lease: impl Fn(usize) -> Duration,
    ) -> ResultToRecord {
        let dag = &template.dag;
        let children = dag.children(step);
        let (kind, related): (&str, Vec<usize>) = match applied {
            Applied::Completed => {
                let mut related: Vec<usize> = children
                    .iter()
                    .flat_map(|&c| dag.ancestors(c).iter().copied())
                    .collect();
                related.sort_unstable();
                related.dedup();
                ("completed", related)
            }
            Applied::Retry { .. } => ("retry", dag.descendants(step).to_vec()),
            Applied::Failed => ("failed", dag.descendants(step).to_vec()),
        };
        // The retry's due time for each attempt of the step's budget: the
        // script picks the one for the attempt counted from the operator's
        // last retry, which only it knows.
        let now = Utc::now();
        let policy = &template.steps[step].retry;
        let dues = match applied {
            Applied::Retry { after } => (1..policy.max_attempts.max(2))
                .map(|k| {
                    let delay = after.unwrap_or_else(|| policy.delay(k, &mut rand::rng()));
                    (now + delay).timestamp_millis().to_string()
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        let leases = children
            .iter()
            .map(|&c| lease(c).as_millis().to_string())
            .collect::<Vec<_>>()
            .join(",");
        ResultToRecord(ScriptItem {
            task_id,
            keys: [
                task_key(task_id),
                lease_key(&template.namespace),
                schedule_key(&template.namespace),
            ],
            args: vec![
                step.to_string(),
                attempt.to_string(),
                kind.to_owned(),
                payload,
                started_at.timestamp_millis().to_string(),
                finished_at.timestamp_millis().to_string(),
                now.timestamp_millis().to_string(),
                dues,
                if redelivered { "1" } else { "0" }.to_owned(),
                self.retention.as_secs().to_string(),
                csv(children),
                csv(&related),
                traceparent.unwrap_or_default().to_owned(),
                policy.max_attempts.to_string(),
                StepRef::prefix(task_id, template),
                leases,
            ],
            redelivered_arg: 8,
        })
    }

    /// Records `results` in one call, in order, as if each were recorded
    /// alone; gives back what each asks the coordinator to do next.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails: then none, some or all
    /// of the results may have been recorded. The inner error is
    /// [`Error::CorruptState`] for a result whose reply cannot be read.
    pub async fn record_results(
        &self,
        results: &[ResultToRecord],
    ) -> Result<Vec<Result<Recorded, Error>>, Error> {
        let replies = self
            .call_batch(&RECORD_RESULT, "record_result", results.iter().map(|r| &r.0))
            .await?;
        Ok(replies
            .into_iter()
            .map(|(task_id, reply)| parse_recorded(task_id, &reply))
            .collect())
    }

    /// Notes that `attempt` of `step` waits for `child`; `false` if that
    /// attempt is no longer running: the step moved on, or the child's
    /// result came first (the step then still names the child).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn wait_for_child(
        &self,
        task_id: Uuid,
        step: usize,
        attempt: u32,
        child: Uuid,
    ) -> Result<bool, Error> {
        let mut conn = self.conn.clone();
        let verdict: String = WAIT_CHILD
            .key(task_key(task_id))
            .arg(step)
            .arg(attempt)
            .arg(child.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(verdict == "applied")
    }

    /// Retries or resolves failed steps of a task, or cancels it, atomically.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn operate(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        operation: Operation<'_>,
    ) -> Result<Operated, Error> {
        let (mode, step, result) = match operation {
            Operation::Retry { step } => ("retry", step, ""),
            Operation::Cancel => ("cancel", None, ""),
            Operation::Resolve { step, result } => ("resolve", Some(step), result),
        };
        let mut call = OPERATE.key(task_key(task_id));
        call.arg(mode)
            .arg(step.map(|s| s.to_string()).unwrap_or_default())
            .arg(result)
            .arg(Utc::now().timestamp_millis())
            .arg(self.retention.as_secs())
            .arg(template.steps.len());
        for i in 0..template.steps.len() {
            call.arg(csv(template.dag.parents(i)));
        }
        for i in 0..template.steps.len() {
            call.arg(csv(template.dag.ancestors(i)));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = call.invoke_async(&mut conn).await.map_err(|e| self.error(e))?;
        let corrupt = || Error::CorruptState {
            task_id,
            detail: format!("operate returned {reply:?}"),
        };
        match &reply[..] {
            [verdict, reason] if verdict == "refused" => Ok(Operated::Refused(reason.clone())),
            [verdict, status, ready, rest @ ..] if verdict == "ok" => {
                let ready = if ready.is_empty() {
                    Vec::new()
                } else {
                    indices(&ready.split(',').map(str::to_owned).collect::<Vec<_>>()).ok_or_else(corrupt)?
                };
                let snapshot = self.task(task_id).await?.ok_or_else(corrupt)?;
                let ready = ready
                    .into_iter()
                    .map(|i| (i, snapshot.steps.get(i).map_or(1, |s| s.attempts)))
                    .collect();
                Ok(Operated::Done {
                    status: parse_status(status).ok_or_else(corrupt)?,
                    ready,
                    inputs: parse_inputs(rest).ok_or_else(corrupt)?,
                })
            }
            _ => Err(corrupt()),
        }
    }

    /// Applies schedule and lease changes of `namespace` in one round trip.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn bookkeep(&self, namespace: &str, changes: &[Bookkeeping]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let (schedule, leases) = (schedule_key(namespace), lease_key(namespace));
        let mut pipe = redis::pipe();
        for change in changes {
            match change {
                Bookkeeping::Lease(r, at) => pipe.zadd(&leases, &r.member, at.timestamp_millis()),
                Bookkeeping::EndLease(r) => pipe.zrem(&leases, &r.member),
                Bookkeeping::Retry(r, at) => pipe.zadd(&schedule, &r.member, at.timestamp_millis()),
                Bookkeeping::EndRetry(r) => pipe.zrem(&schedule, &r.member),
            }
            .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(|e| self.error(e))
    }

    /// How long a task stays in the index: twice the retention, so that
    /// `tasker list` finds every task whose hash has not expired yet.
    fn index_horizon_ms(&self) -> i64 {
        2 * i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Claims up to `limit` retries of `namespace` that are due, holding
    /// each for `hold`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn claim_due_retries(
        &self,
        namespace: &str,
        hold: Duration,
        limit: usize,
    ) -> Result<Vec<StepRef>, Error> {
        self.claim(&schedule_key(namespace), hold, limit).await
    }

    /// Claims up to `limit` attempts of `namespace` whose lease has run out,
    /// holding each for `hold`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn claim_expired_leases(
        &self,
        namespace: &str,
        hold: Duration,
        limit: usize,
    ) -> Result<Vec<StepRef>, Error> {
        self.claim(&lease_key(namespace), hold, limit).await
    }

    async fn claim(&self, key: &str, hold: Duration, limit: usize) -> Result<Vec<StepRef>, Error> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = CLAIM_DUE
            .key(key)
            .arg(Utc::now().timestamp_millis())
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX))
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let mut claimed = Vec::with_capacity(members.len());
        for member in members {
            match StepRef::parse(member.clone()) {
                Some(r) => claimed.push(r),
                None => {
                    tracing::error!(key, member, "unreadable entry in a schedule; removing it");
                    let _: i64 = conn.zrem(key, &member).await.map_err(|e| self.error(e))?;
                }
            }
        }
        Ok(claimed)
    }

    /// Starts the next attempt of a claimed retry; `None` if it no longer applies.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn dispatch_retry(
        &self,
        retry: &StepRef,
        template: &TaskTemplate,
    ) -> Result<Option<Inputs>, Error> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = DISPATCH_RETRY
            .key(task_key(retry.task_id))
            .arg(retry.step)
            .arg(retry.attempt)
            .arg(csv(template.dag.ancestors(retry.step)))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        match reply.first().map(String::as_str) {
            Some("dispatch") => parse_inputs(&reply[1..])
                .map(Some)
                .ok_or_else(|| Error::CorruptState {
                    task_id: retry.task_id,
                    detail: format!("dispatch_retry returned {reply:?}"),
                }),
            _ => Ok(None),
        }
    }

    /// When each of `steps` last finished, in Unix milliseconds, as workers
    /// reported it.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn finish_times(&self, task_id: Uuid, steps: &[usize]) -> Result<Vec<Option<i64>>, Error> {
        let times = self.step_fields(task_id, "t1", steps).await?;
        Ok(times
            .into_iter()
            .map(|t| t.and_then(|t| t.parse().ok()))
            .collect())
    }

    /// The traceparents of the spans that recorded each of `steps`' results.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn result_spans(&self, task_id: Uuid, steps: &[usize]) -> Result<Vec<Option<String>>, Error> {
        self.step_fields(task_id, "sc", steps).await
    }

    async fn step_fields(
        &self,
        task_id: Uuid,
        field: &str,
        steps: &[usize],
    ) -> Result<Vec<Option<String>>, Error> {
        let fields: Vec<String> = steps.iter().map(|s| format!("{field}:{s}")).collect();
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(task_key(task_id)).arg(&fields);
        cmd.query_async(&mut conn).await.map_err(|e| self.error(e))
    }

    /// The newest tasks first, at most `limit`, of `namespace` and with
    /// `status` when given.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn list_tasks(
        &self,
        namespace: Option<&str>,
        status: Option<TaskStatus>,
        limit: usize,
    ) -> Result<Vec<TaskSummary>, Error> {
        const PAGE: isize = 200;
        let mut conn = self.conn.clone();
        let mut found = Vec::new();
        let mut start: isize = 0;
        while found.len() < limit {
            let ids: Vec<String> = conn
                .zrevrange(TASK_INDEX, start, start + PAGE - 1)
                .await
                .map_err(|e| self.error(e))?;
            if ids.is_empty() {
                break;
            }
            start += PAGE;
            let rows = futures::future::try_join_all(ids.iter().map(|id| {
                let mut conn = conn.clone();
                let key = Uuid::parse_str(id).map_or_else(|_| id.clone(), task_key);
                async move { SUMMARY.key(key).invoke_async::<Vec<String>>(&mut conn).await }
            }))
            .await
            .map_err(|e| self.error(e))?;
            let mut gone = Vec::new();
            for (id, row) in ids.iter().zip(rows) {
                let (Ok(task_id), [ns, name, ver, st, created, finished, steps, done]) =
                    (Uuid::parse_str(id), &row[..])
                else {
                    gone.push(id.clone());
                    continue;
                };
                let Some(st) = parse_status(st) else { continue };
                if namespace.is_some_and(|n| n != ns) || status.is_some_and(|s| s != st) {
                    continue;
                }
                let ms = |v: &str| v.parse().ok().and_then(DateTime::from_timestamp_millis);
                found.push(TaskSummary {
                    task_id,
                    namespace: ns.clone(),
                    name: name.clone(),
                    version: ver.clone(),
                    status: st,
                    created_at: ms(created).unwrap_or_default(),
                    finished_at: ms(finished),
                    steps: steps.parse().unwrap_or(0),
                    steps_done: done.parse().unwrap_or(0),
                });
                if found.len() == limit {
                    break;
                }
            }
            if !gone.is_empty() {
                let _: () = conn.zrem(TASK_INDEX, &gone).await.map_err(|e| self.error(e))?;
                start -= isize::try_from(gone.len()).unwrap_or(0);
            }
        }
        Ok(found)
    }

    /// Reads a task; `None` if it does not exist (or has expired).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails, and [`Error::CorruptState`]
    /// if the hash cannot be read as a task.
    pub async fn task(&self, task_id: Uuid) -> Result<Option<TaskSnapshot>, Error> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> =
            conn.hgetall(task_key(task_id)).await.map_err(|e| self.error(e))?;
        if fields.is_empty() {
            return Ok(None);
        }
        TaskSnapshot::parse(task_id, &fields).map(Some)
    }
}

/// A task as the store holds it.
#[derive(Debug, Clone)]
pub struct TaskSnapshot {
    /// The task.
    pub task_id: Uuid,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub name: String,
    /// The template's version.
    pub version: String,
    /// Where the task stands.
    pub status: TaskStatus,
    /// When the task was accepted.
    pub created_at: DateTime<Utc>,
    /// When its last step ended, once it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// Each step, by index.
    pub steps: Vec<StepSnapshot>,
    /// Who asked for the task: (reply queue, correlation id).
    pub replies: Vec<(String, String)>,
    /// The W3C traceparent of the span that accepted the task.
    pub traceparent: Option<String>,
    /// For a child task, the step that waits for it.
    pub parent: Option<ParentStep>,
}

/// A step as the store holds it.
#[derive(Debug, Clone)]
pub struct StepSnapshot {
    /// The step's name.
    pub name: String,
    /// Where it stands.
    pub state: StepState,
    /// Attempts started.
    pub attempts: u32,
    /// The result JSON, once completed.
    pub result: Option<String>,
    /// The last error, if any attempt failed.
    pub error: Option<StepFailure>,
    /// When its dependencies had all completed and it was enqueued (or an
    /// operator's retry enqueued it again); `None` for a root, which is
    /// enqueued with its task.
    pub released_at: Option<DateTime<Utc>>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The child task the step's handler started, if it started one.
    pub child: Option<Uuid>,
}

impl TaskSnapshot {
    fn parse(task_id: Uuid, f: &HashMap<String, String>) -> Result<Self, Error> {
        let corrupt = |what: &str| Error::CorruptState {
            task_id,
            detail: format!("unreadable field {what}"),
        };
        let get = |k: &str| f.get(k).cloned().ok_or_else(|| corrupt(k));
        let time = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).map(millis);
        let names = get("steps")?;
        let mut steps = Vec::new();
        for (i, name) in names.split(',').enumerate() {
            let state = get(&format!("s:{i}"))?;
            let state = match state.as_str() {
                "pending" => StepState::Pending,
                "enqueued" => StepState::Enqueued,
                "retry" => StepState::WaitingRetry,
                "completed" => StepState::Completed,
                "failed" => StepState::Failed,
                "blocked" => StepState::Blocked,
                "cancelled" => StepState::Cancelled,
                _ => return Err(corrupt(&format!("s:{i}"))),
            };
            steps.push(StepSnapshot {
                name: name.to_owned(),
                state,
                attempts: f.get(&format!("a:{i}")).and_then(|a| a.parse().ok()).unwrap_or(0),
                result: f.get(&format!("r:{i}")).cloned(),
                error: f
                    .get(&format!("e:{i}"))
                    .and_then(|e| serde_json::from_str(e).ok()),
                released_at: time(&format!("q:{i}")),
                started_at: time(&format!("t0:{i}")),
                finished_at: time(&format!("t1:{i}")),
                child: f.get(&format!("ch:{i}")).and_then(|c| c.parse().ok()),
            });
        }
        let replies = f
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("reply:").map(|c| (v.clone(), c.to_owned())))
            .collect();
        Ok(Self {
            task_id,
            namespace: get("ns")?,
            name: get("name")?,
            version: get("ver")?,
            status: parse_status(&get("status")?).ok_or_else(|| corrupt("status"))?,
            created_at: time("created").ok_or_else(|| corrupt("created"))?,
            finished_at: time("finished"),
            steps,
            replies,
            traceparent: f.get("tp").filter(|tp| !tp.is_empty()).cloned(),
            parent: match f.get("parent") {
                Some(p) => Some(serde_json::from_str(p).map_err(|_| corrupt("parent"))?),
                None => None,
            },
        })
    }

    /// The task-finished report.
    #[must_use]
    pub fn report(&self) -> TaskFinished {
        TaskFinished {
            protocol_version: PROTOCOL_VERSION,
            task_id: self.task_id,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            status: self.status,
            created_at: self.created_at,
            finished_at: self.finished_at.unwrap_or(self.created_at),
            steps: self
                .steps
                .iter()
                .map(|s| StepReport {
                    name: s.name.clone(),
                    state: s.state,
                    attempts: s.attempts,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    result: s
                        .result
                        .as_ref()
                        .and_then(|r| RawValue::from_string(r.clone()).ok()),
                    error: s.error.clone(),
                    child_task_id: s.child,
                })
                .collect(),
            parent: self.parent.clone(),
        }
    }
}

/// Reads one task's reply from `create_task.lua`.
fn parse_created(task_id: Uuid, reply: &[String]) -> Result<Created, Error> {
    let corrupt = || Error::CorruptState {
        task_id,
        detail: format!("create_task returned {reply:?}"),
    };
    match reply.first().map(String::as_str) {
        Some("created") => Ok(Created::New {
            roots: indices(&reply[1..]).ok_or_else(corrupt)?,
        }),
        Some("exists") => {
            let status = reply.get(1).and_then(|s| parse_status(s)).ok_or_else(corrupt)?;
            let republish = indices(&reply[2..]).ok_or_else(corrupt)?;
            Ok(Created::Existing { status, republish })
        }
        _ => Err(corrupt()),
    }
}

/// Reads one result's reply from `record_result.lua`.
fn parse_recorded(task_id: Uuid, reply: &[String]) -> Result<Recorded, Error> {
    let corrupt = || Error::CorruptState {
        task_id,
        detail: format!("record_result returned {reply:?}"),
    };
    let [verdict, status, ready, due, rest @ ..] = reply else {
        return Err(corrupt());
    };
    let verdict = match verdict.as_str() {
        "applied" => Verdict::Applied,
        "duplicate" => Verdict::Duplicate,
        "stale" => Verdict::Stale,
        "unknown" => Verdict::UnknownTask,
        _ => return Err(corrupt()),
    };
    let status = if verdict == Verdict::UnknownTask {
        TaskStatus::Failed
    } else {
        parse_status(status).ok_or_else(corrupt)?
    };
    let ready = if ready.is_empty() {
        Vec::new()
    } else {
        indices(&ready.split(',').map(str::to_owned).collect::<Vec<_>>()).ok_or_else(corrupt)?
    };
    let retry_due = if due.is_empty() {
        None
    } else {
        Some(millis(due.parse().map_err(|_| corrupt())?))
    };
    let (inputs, finished) = if status == TaskStatus::Running || rest.is_empty() {
        (parse_inputs(rest).ok_or_else(corrupt)?, None)
    } else {
        let fields = pairs(rest).ok_or_else(corrupt)?;
        (Inputs::default(), Some(TaskSnapshot::parse(task_id, &fields)?))
    };
    Ok(Recorded {
        verdict,
        status,
        ready,
        retry_due,
        inputs,
        finished,
    })
}

fn parse_status(s: &str) -> Option<TaskStatus> {
    match s {
        "running" => Some(TaskStatus::Running),
        "complete" => Some(TaskStatus::Complete),
        "failed" => Some(TaskStatus::Failed),
        "cancelled" => Some(TaskStatus::Cancelled),
        _ => None,
    }
}

fn indices(items: &[String]) -> Option<Vec<usize>> {
    items.iter().map(|s| s.parse().ok()).collect()
}

fn parse_inputs(items: &[String]) -> Option<Inputs> {
    let Some((context, pairs)) = items.split_first() else {
        return Some(Inputs::default());
    };
    if pairs.len() % 2 != 0 {
        return None;
    }
    let results = pairs
        .chunks(2)
        .map(|p| Some((p[0].parse().ok()?, p[1].clone())))
        .collect::<Option<HashMap<usize, String>>>()?;
    Some(Inputs {
        context: context.clone(),
        results,
    })
}

/// A Redis `HGETALL` reply, as field, value pairs, into a map.
fn pairs(items: &[String]) -> Option<HashMap<String, String>> {
    if !items.len().is_multiple_of(2) {
        return None;
    }
    Some(items.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
}

fn csv(items: &[usize]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
