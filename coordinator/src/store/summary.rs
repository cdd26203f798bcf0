//! `summary.lua`, and `tasker list`: the newest tasks, one line each.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tasker_protocol::TaskStatus;
use uuid::Uuid;

use super::Store;
use super::keys::{TASK_INDEX, task_key};
use super::script::LuaScript;
use super::snapshot::millis;
use crate::Error;

static SUMMARY: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("summary", 1, include_str!("summary.lua")));

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
        const PAGE: isize = 200;
        let mut conn = self.conn();
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
            let tasks: Vec<(String, Option<Uuid>, [String; 1])> = ids
                .into_iter()
                .map(|id| {
                    let task_id = Uuid::parse_str(&id).ok();
                    let key = task_id.map_or_else(|| id.clone(), task_key);
                    (id, task_id, [key])
                })
                .collect();
            let replies = SUMMARY
                .call::<_, Reply>(self, tasks.iter().map(|(_, _, key)| (&key[..], &Args {})))
                .await?;
            let mut gone = Vec::new();
            for ((id, task_id, _), reply) in tasks.iter().zip(replies) {
                let reply = reply?;
                let line = task_id.and_then(|task_id| reply.read(task_id));
                let Some(line) = line else {
                    gone.push(id.clone());
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
            if !gone.is_empty() {
                let _: () = conn.zrem(TASK_INDEX, &gone).await.map_err(|e| self.error(e))?;
                start -= isize::try_from(gone.len()).unwrap_or(0);
            }
        }
        Ok(found)
    }
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
