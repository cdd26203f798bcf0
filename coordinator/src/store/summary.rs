//! `summary.lua`, and `tasker list`: the newest tasks, one line each.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tasker_protocol::TaskStatus;
use uuid::Uuid;

use std::collections::VecDeque;

use super::Store;
use super::keys::Shard;
use super::script::LuaScript;
use super::snapshot::millis;
use crate::Error;

static SUMMARY: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("summary", 1, include_str!("summary.lua")).without_replicas());

/// The arguments, as the script's header names them: none.
#[derive(Debug, Serialize)]
struct Args {}

/// The reply, as the script's header names it; empty for a task that is
/// gone.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    namespace: Option<String>,
    name: Option<String>,
    version: Option<String>,
    status: Option<TaskStatus>,
    created: Option<i64>,
    finished: Option<i64>,
    steps: Option<usize>,
    done: Option<usize>,
}

/// One line of `tasker list`.
#[derive(Debug, Clone, Serialize)]
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
    /// Steps that will change no more (completed, failed, blocked or
    /// cancelled).
    pub steps_done: usize,
}

impl Reply {
    /// The line, or `None` for a task that is gone.
    fn read(self, task_id: Uuid) -> Option<TaskSummary> {
        Some(TaskSummary {
            task_id,
            namespace: self.namespace?,
            name: self.name?,
            version: self.version?,
            status: self.status?,
            created_at: millis(self.created?),
            finished_at: self.finished.map(millis),
            steps: self.steps?,
            steps_done: self.done?,
        })
    }
}

impl Store {
    /// The newest tasks first, at most `limit`, of `namespace` and with
    /// `status` when given. Index entries of tasks that expired are dropped
    /// on the way.
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
        let mut conn = self.conn();
        let mut shards: Vec<IndexCursor> = self.keys.shards().map(IndexCursor::new).collect();
        let mut found = Vec::new();
        while found.len() < limit {
            for cursor in &mut shards {
                cursor.refill(self, &mut conn).await?;
            }
            let ids = newest(&mut shards);
            if ids.is_empty() {
                break;
            }
            let tasks: Vec<(Shard, String, Option<Uuid>, [String; 1])> = ids
                .into_iter()
                .map(|(shard, id)| {
                    let task_id = Uuid::parse_str(&id).ok();
                    let key = task_id.map_or_else(|| id.clone(), |t| self.keys.task(t));
                    (shard, id, task_id, [key])
                })
                .collect();
            let replies = SUMMARY
                .call::<_, Reply>(self, tasks.iter().map(|(_, _, _, key)| (&key[..], &Args {})))
                .await?;
            let mut gone: Vec<(Shard, String)> = Vec::new();
            for ((shard, id, task_id, _), reply) in tasks.iter().zip(replies) {
                let reply = reply?;
                let line = task_id.and_then(|task_id| reply.read(task_id));
                let Some(line) = line else {
                    gone.push((*shard, id.clone()));
                    continue;
                };
                if namespace.is_some_and(|n| n != line.namespace) || status.is_some_and(|s| s != line.status)
                {
                    continue;
                }
                found.push(line);
                if found.len() == limit {
                    break;
                }
            }
            for (shard, id) in gone {
                let _: () = conn
                    .zrem(self.keys.index(shard), &id)
                    .await
                    .map_err(|e| self.error(e))?;
                // What followed it in the index moves up one.
                shards[usize::from(shard)].next -= 1;
            }
        }
        Ok(found)
    }
}

/// How many index entries a read takes, per shard.
const PAGE: isize = 200;

/// One shard's task index, read newest first, a page at a time.
struct IndexCursor {
    shard: Shard,
    /// The position of the next entry to read.
    next: isize,
    /// Entries read and not yet taken, newest first: id and creation time.
    page: VecDeque<(String, f64)>,
    /// Whether the index has no more entries.
    ended: bool,
}

impl IndexCursor {
    fn new(shard: Shard) -> Self {
        Self {
            shard,
            next: 0,
            page: VecDeque::new(),
            ended: false,
        }
    }

    /// Reads the next page, once the last one is taken.
    async fn refill(&mut self, store: &Store, conn: &mut super::Conn) -> Result<(), Error> {
        if !self.page.is_empty() || self.ended {
            return Ok(());
        }
        let entries: Vec<(String, f64)> = conn
            .zrevrange_withscores(store.keys.index(self.shard), self.next, self.next + PAGE - 1)
            .await
            .map_err(|e| store.error(e))?;
        self.ended = entries.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
        self.next += isize::try_from(entries.len()).unwrap_or(0);
        self.page = entries.into();
        Ok(())
    }
}

/// Takes the newest entries of all `shards`, merged newest first: up to a
/// page, and no further than a shard whose page ran out while its index
/// goes on, since what it holds next may be newer than the others' rest.
fn newest(shards: &mut [IndexCursor]) -> Vec<(Shard, String)> {
    let mut taken = Vec::new();
    while taken.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
        let Some(cursor) = shards
            .iter_mut()
            .filter(|c| !c.page.is_empty())
            .max_by(|a, b| a.page[0].1.total_cmp(&b.page[0].1))
        else {
            break;
        };
        let (id, _) = cursor.page.pop_front().expect("the page is not empty");
        taken.push((cursor.shard, id));
        if cursor.page.is_empty() && !cursor.ended {
            break;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let reply = Reply {
            namespace: Some("n".into()),
            name: Some("t".into()),
            version: Some("1.0.0".into()),
            status: Some(TaskStatus::Cancelled),
            created: Some(0),
            finished: Some(1),
            steps: Some(2),
            done: Some(2),
        };
        contract::check(&SUMMARY, &Args {}, &reply);
    }

    #[test]
    fn the_newest_entries_of_every_shard_come_first() {
        let cursor = |shard, entries: &[(&str, f64)], ended| IndexCursor {
            shard,
            next: 0,
            page: entries.iter().map(|(id, at)| ((*id).to_owned(), *at)).collect(),
            ended,
        };
        let mut shards = vec![
            cursor(0, &[("a5", 5.0), ("a2", 2.0)], true),
            cursor(1, &[("b4", 4.0), ("b3", 3.0)], false),
            cursor(2, &[], true),
        ];
        // Shard 1's page runs out at b3, and its index goes on: what it
        // holds next may be newer than a2, so the merge stops there.
        let ids: Vec<String> = newest(&mut shards).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, ["a5", "b4", "b3"]);
        shards[1].ended = true;
        let ids: Vec<String> = newest(&mut shards).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, ["a2"]);
    }

    #[test]
    fn a_gone_task_reads_as_no_line() {
        let gone: Reply = serde_json::from_str("{}").unwrap();
        assert!(gone.read(Uuid::nil()).is_none());
        let line: Reply = serde_json::from_str(
            r#"{"namespace":"n","name":"t","version":"1.0.0","status":"cancelled","created":1,"steps":3,"done":3}"#,
        )
        .unwrap();
        let line = line.read(Uuid::nil()).unwrap();
        assert_eq!(
            (line.status, line.steps_done, line.finished_at),
            (TaskStatus::Cancelled, 3, None)
        );
    }
}
