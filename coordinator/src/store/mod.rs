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
//! Tasks are split into shards by their id ([`KeySpace`]). The keys of a
//! task and of its shard carry the shard as their hash tag, `{<shard>}`,
//! so that every script call touches one slot of a Redis Cluster. A store
//! of one shard, the default on a single Redis, leaves the `{<shard>}:`
//! out and names a task's hash `tasker:{<task_id>}`: the keys a store had
//! before shards existed.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tasker:{<shard>}:task:<task_id>` | hash | one task: the fields below. It expires the retention period after the task ends. |
//! | `tasker:{<shard>}:leases:<namespace>` | sorted set | every running attempt of the shard's tasks, scored by when its lease runs out (unix ms). Member: `<task_id>\|<namespace>\|<name>\|<version>\|<step>\|<attempt>`. |
//! | `tasker:{<shard>}:schedule:<namespace>` | sorted set | every retry waiting for its backoff, scored by when it is due. Member: the failed attempt's, as above, then `\|<traceparent>` when it carries one. |
//! | `tasker:{<shard>}:waiting:<namespace>` | sorted set | every step that waits for a worker (its callable reached no queue), scored by when to try it again. Member: as a lease's. |
//! | `tasker:{<shard>}:tasks` | sorted set | every task id of the shard, scored by when it was accepted, for `tasker list`. |
//! | `tasker:shards` | string | how many shards the store has, noted by the first coordinator. |
//! | `tasker:namespaces` | hash | every namespace a coordinator has served, with when one last started serving it (unix ms). |
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
pub mod connection;
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
use uuid::Uuid;

use crate::Error;

pub use claim_due::Claimed;
pub use connection::Conn;
pub use connection::Durability;
pub use create_task::{Created, NewTask, TaskToCreate};
pub use dispatch_retry::Dispatched;
pub use keys::{KeySpace, Shard, StepRef};
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

/// How a coordinator's store is set up; the CLI's reads take the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How many shards a new store gets: by default 1 on a single Redis
    /// and [`CLUSTER_SHARDS`] on a cluster. The first coordinator to
    /// connect fixes the count; a different count given later is refused.
    pub shards: Option<u16>,
    /// How many replicas must hold a write before the coordinator acks
    /// the message that caused it.
    pub durability: Durability,
    /// How long to wait for them before the write counts as failed: the
    /// message is then tried again.
    pub wait_timeout: Duration,
    /// Whether to note the shard count in an empty store: a coordinator
    /// does, a command that only reads does not.
    pub fix_shards: bool,
}

/// How many shards a new store on a Redis Cluster gets by default.
pub const CLUSTER_SHARDS: u16 = 16;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            shards: None,
            durability: Durability::Auto,
            wait_timeout: Duration::from_secs(2),
            fix_shards: false,
        }
    }
}

/// A connection to the store. Cloning shares the connection, which
/// reconnects by itself after Redis restarts or fails over.
#[derive(Clone)]
pub struct Store {
    conn: Conn,
    url: String,
    retention: Duration,
    keys: KeySpace,
    /// How many replicas each write waits for, and for how long.
    replicas: u16,
    wait_timeout: Duration,
}

impl Store {
    /// Connects to Redis at `url` (`redis://` or `rediss://`; a cluster's
    /// nodes separated by commas), to read; finished tasks stay for
    /// `retention`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::RedisRefused`] if Redis refuses the login, and
    /// [`Error::Redis`] if it cannot be reached.
    pub async fn connect(url: &str, retention: Duration) -> Result<Self, Error> {
        Self::connect_with(url, retention, &StoreOptions::default()).await
    }

    /// Connects as [`Self::connect`] does, set up by `options`.
    ///
    /// # Errors
    ///
    /// As [`Self::connect`], and [`Error::Config`] if `options` ask for a
    /// shard count other than the store's, or for more replicas than a
    /// master has.
    pub async fn connect_with(url: &str, retention: Duration, options: &StoreOptions) -> Result<Self, Error> {
        // The password beside the URL (TASKER_REDIS_PASSWORD or its _FILE),
        // and the TLS files, as every Tasker process takes them.
        let runtime = |e: tasker_runtime::Error| Error::Config(e.to_string());
        let url =
            tasker_runtime::secrets::with_password_from_env(url, "TASKER_REDIS_PASSWORD").map_err(runtime)?;
        let tls = tasker_runtime::secrets::TlsFiles::from_env()
            .and_then(|files| files.read())
            .map_err(runtime)?;
        let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        if urls.is_empty() {
            return Err(Error::Config(
                "TASKER_REDIS_URL is empty; give redis://host:port".into(),
            ));
        }
        let redacted = urls
            .iter()
            .map(|u| tasker_runtime::broker::redact_url(u))
            .collect::<Vec<_>>()
            .join(",");
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
        let connected = Conn::open(&urls, &tls, fail).await?;
        let replicas = match options.durability {
            Durability::Auto => u16::from(connected.replicas > 0),
            Durability::Replicas(n) if usize::from(n) > connected.replicas => {
                return Err(Error::Config(format!(
                    "TASKER_REDIS_WAIT_REPLICAS asks for {n} replica(s) per write, but a master at {redacted} has {}; \
                     add replicas, or ask for fewer ('off' waits for none)",
                    connected.replicas
                )));
            }
            Durability::Replicas(n) => n,
        };
        let mut store = Self {
            keys: KeySpace::new(1),
            conn: connected.conn,
            url: redacted,
            retention,
            replicas,
            wait_timeout: options.wait_timeout,
        };
        store.keys = store.shards(options).await?;
        Ok(store)
    }

    /// The store's shards: as it notes them, or the default for a new one
    /// (which a coordinator notes).
    async fn shards(&self, options: &StoreOptions) -> Result<KeySpace, Error> {
        let default = if self.conn.is_cluster() { CLUSTER_SHARDS } else { 1 };
        let wanted = options.shards.unwrap_or(default);
        let mut conn = self.conn();
        if options.fix_shards {
            let _: bool = conn
                .set_nx(keys::SHARDS, wanted)
                .await
                .map_err(|e| self.error(e))?;
        }
        let noted: Option<u16> = conn.get(keys::SHARDS).await.map_err(|e| self.error(e))?;
        let count = noted.unwrap_or(wanted);
        if let Some(asked) = options.shards
            && asked != count
        {
            return Err(Error::Config(format!(
                "TASKER_REDIS_SHARDS asks for {asked} shards, but the store at {} has {count}; the count is fixed \
                 when a store is first used: leave the setting out, or give {count}",
                self.url
            )));
        }
        KeySpace::checked(count).ok_or_else(|| {
            Error::Config(format!(
                "the store at {} notes {count} shards in {}, which is not 1 to {}",
                self.url,
                keys::SHARDS,
                keys::MAX_SHARDS
            ))
        })
    }

    /// Where each task's keys are.
    #[must_use]
    pub fn keys(&self) -> KeySpace {
        self.keys
    }

    /// How many replicas each write waits for.
    #[must_use]
    pub fn replicas_per_write(&self) -> u16 {
        self.replicas
    }

    /// The store's connection, for commands of one's own: it follows a
    /// cluster's redirects as the store's own calls do.
    #[must_use]
    pub fn connection(&self) -> Conn {
        self.conn.clone()
    }

    /// Whether the store is a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Waits until the writes this connection made to the master of `slot`
    /// are on as many replicas as the store asks for.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotReplicated`] if fewer replicas acknowledged them
    /// in time, and [`Error::Redis`] if Redis fails.
    pub(crate) async fn wait_for_replicas(&self, slot: redis::cluster_routing::Slot) -> Result<(), Error> {
        if self.replicas == 0 {
            return Ok(());
        }
        let acked = self
            .conn
            .wait(slot, self.replicas, self.wait_timeout)
            .await
            .map_err(|e| self.error(e))?;
        if acked < self.replicas {
            return Err(Error::NotReplicated {
                url: self.url.clone(),
                wanted: self.replicas,
                acked,
                waited: self.wait_timeout,
            });
        }
        Ok(())
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
    fn conn(&self) -> Conn {
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
            .hgetall(self.keys.task(task_id))
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
