//! The coordinator's state in Redis.
//!
//! Every change is one of the Lua scripts beside this file, atomic and one
//! round trip; each script has a Rust file of the same name that holds its
//! typed arguments, its call and its reply (see [`script`] for the
//! contract between the two languages). [`keys`] names the keys and the
//! members of the sorted sets; [`snapshot`] reads a task back.
//!
//! # The schema
//!
//! This is the one place the keys and fields are described; the scripts
//! and the Rust files refer here.
//!
//! ## Keys
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tasker:{<task_id>}` | hash | one task: the fields below. It expires the retention period after the task ends. |
//! | `tasker:leases:<namespace>` | sorted set | every running attempt, scored by when its lease runs out (unix ms). Member: `<task_id>\|<namespace>\|<name>\|<version>\|<step>\|<attempt>`. |
//! | `tasker:schedule:<namespace>` | sorted set | every retry waiting for its backoff, scored by when it is due. Member: the failed attempt's, as above, then `\|<traceparent>` when it carries one. |
//! | `tasker:tasks` | sorted set | every task id, scored by when it was accepted, for `tasker list`. |
//! | `tasker:namespaces` | hash | every namespace a coordinator has served, with when one last started serving it (unix ms). |
//! | `tasker:waiting:<namespace>` | sorted set | every step that waits for a worker (its callable reached no queue), scored by when to try it again. Member: as a lease's. |
//! | `tasker:workers` | hash | every worker that announced itself, by worker id: `{"announcement": …, "received_ms": …}`. Dropped when it says it leaves, and pruned an hour after it was last heard. |
//!
//! A claimed lease or retry is pushed into the future by the claim hold
//! rather than removed, until its claimant has acted on it.
//!
//! ## Task fields
//!
//! | field | value |
//! |---|---|
//! | `ns`, `name`, `ver` | the template |
//! | `status` | `running`, `complete`, `failed` or `cancelled` ([`TaskStatus::as_str`]) |
//! | `cancel` | `1` once an operator cancelled the task |
//! | `ctx` | the context, JSON |
//! | `steps` | the step names in template order, `a,b,c` |
//! | `tp` | the W3C traceparent of the span that accepted the task, for its whole-life span |
//! | `created`, `finished` | unix ms |
//! | `open` | steps not yet terminal |
//! | `failed` | failed steps |
//! | `reply:<correlation id>` | the reply queue of each requester |
//! | `parent` | for a child task, the JSON of the parent step that waits for it |
//!
//! ## Step fields, by step index `i`
//!
//! | field | value |
//! |---|---|
//! | `s:i` | the state: `pending`, `enqueued`, `waiting_retry`, `completed`, `failed`, `blocked` or `cancelled` ([`StepState::as_str`], the same names as on the wire) |
//! | `a:i` | the current attempt (0 until it first runs) |
//! | `b:i` | the last attempt before an operator's retry; the budget of attempts counts from it |
//! | `w:i` | dependencies not yet completed: the join's convergence counter |
//! | `f:i` | how often the counter released the step since it was last reset: always 1, an audit the chaos suite checks |
//! | `q:i` | when the counter released it (unix ms) |
//! | `r:i` | the result, JSON |
//! | `e:i` | the last error, JSON |
//! | `t0:i`, `t1:i` | when the last attempt started and ended, as its worker reported (unix ms) |
//! | `due:i` | when its retry is due (unix ms) |
//! | `sc:i` | the traceparent of the span that recorded its result, which a join's publish links to |
//! | `ch:i` | the child task its handler started |
//! | `ww:i` | while the step waits for a worker: the callable no service serves |
//!
//! [`TaskStatus::as_str`]: tasker_protocol::TaskStatus::as_str
//! [`StepState::as_str`]: tasker_protocol::StepState::as_str

pub mod claim_due;
pub mod create_task;
pub mod dispatch_retry;
pub mod keys;
pub mod operate;
pub mod record_result;
pub mod script;
pub mod snapshot;
pub mod summary;
pub mod wait_child;
pub mod wait_worker;
pub mod workers;

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::Error;

pub use claim_due::Claimed;
pub use create_task::{Created, NewTask, TaskToCreate};
pub use dispatch_retry::Dispatched;
pub use keys::{StepRef, lease_key, schedule_key, task_key, waiting_key};
pub use operate::{Operated, Operation, ReadyStep};
pub use record_result::{Recorded, ResultToRecord, StepEnd, Verdict};
pub use script::{Inputs, JoinSpans};
pub use snapshot::{Reply, StepSnapshot, TaskSnapshot};
pub use summary::TaskSummary;
pub use wait_worker::{Released, Waiting};
pub use workers::WorkerSeen;

/// `duration` in whole milliseconds, as the scripts take durations.
fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A connection to the store. Cloning shares the connection, which
/// reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    url: String,
    retention: Duration,
}

impl Store {
    /// Connects to Redis at `url` (`redis://` or `rediss://`); finished
    /// tasks stay for `retention`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::RedisRefused`] if Redis refuses the login, and
    /// [`Error::Redis`] if it cannot be reached.
    pub async fn connect(url: &str, retention: Duration) -> Result<Self, Error> {
        let redacted = tasker_runtime::broker::redact_url(url);
        let fail = |source: redis::RedisError| match source.kind() {
            redis::ErrorKind::AuthenticationFailed => Error::RedisRefused {
                url: redacted.clone(),
                source,
            },
            _ => Error::Redis {
                url: redacted.clone(),
                source,
            },
        };
        let client = redis::Client::open(url).map_err(fail)?;
        // One plain connection first: a refused login or an absent server
        // shows at once, where the manager would try several times over
        // seconds before saying so.
        drop(client.get_multiplexed_async_connection().await.map_err(fail)?);
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

    /// How long a finished task stays.
    #[must_use]
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// How long a task stays in the index: twice the retention, so that
    /// `tasker list` finds every task whose hash has not expired yet.
    fn index_horizon(&self) -> Duration {
        2 * self.retention
    }

    fn error(&self, source: redis::RedisError) -> Error {
        Error::Redis {
            url: self.url.clone(),
            source,
        }
    }

    /// A connection for one call.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Reads a task; `None` if it does not exist (or has expired).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails, and [`Error::CorruptState`]
    /// if the hash cannot be read as a task.
    pub async fn task(&self, task_id: Uuid) -> Result<Option<TaskSnapshot>, Error> {
        let fields: HashMap<String, String> = self
            .conn()
            .hgetall(task_key(task_id))
            .await
            .map_err(|e| self.error(e))?;
        if fields.is_empty() {
            return Ok(None);
        }
        TaskSnapshot::parse(task_id, &fields).map(Some)
    }

    /// Ends a claim on a lease or retry (see [`Store::claim_due_retries`]):
    /// its claimant has acted on it, or it cannot be read.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn end_claim(&self, key: &str, member: &str) -> Result<(), Error> {
        self.conn().zrem(key, member).await.map_err(|e| self.error(e))
    }

    /// Notes that a coordinator serves `namespaces` as of `now_ms`, so that
    /// any coordinator can tell a request for a namespace that is served,
    /// whose queue may only be missing for a moment, from one that no
    /// coordinator has ever served.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn note_served(&self, namespaces: &[&str], now_ms: i64) -> Result<(), Error> {
        if namespaces.is_empty() {
            return Ok(());
        }
        let entries: Vec<(&str, i64)> = namespaces.iter().map(|n| (*n, now_ms)).collect();
        self.conn()
            .hset_multiple(keys::NAMESPACES, &entries)
            .await
            .map_err(|e| self.error(e))
    }

    /// Whether a coordinator has ever served `namespace`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn is_served(&self, namespace: &str) -> Result<bool, Error> {
        self.conn()
            .hexists(keys::NAMESPACES, namespace)
            .await
            .map_err(|e| self.error(e))
    }
}
