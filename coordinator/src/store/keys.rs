//! The store's key scheme (see the schema in [`crate::store`]): the keys,
//! and the members of the lease sets and retry schedules.

use tasker_protocol::TaskTemplate;
use uuid::Uuid;

/// Every task by creation time (unix ms), newest last, for `tasker list`.
/// Entries of tasks that expired are dropped as `list` meets them, and
/// anything older than twice the retention when a task is indexed.
pub const TASK_INDEX: &str = "tasker:tasks";

/// Every namespace a coordinator has served, with when one last started
/// serving it (unix ms).
pub const NAMESPACES: &str = "tasker:namespaces";

/// The key of a task's hash. The braces make the task id its hash tag.
#[must_use]
pub fn task_key(task_id: Uuid) -> String {
    format!("tasker:{{{task_id}}}")
}

/// The sorted set of running attempts of `namespace`, scored by their lease
/// deadline.
#[must_use]
pub fn lease_key(namespace: &str) -> String {
    format!("tasker:leases:{namespace}")
}

/// The sorted set of scheduled retries of `namespace`, scored by when each
/// is due. One per namespace, so that a coordinator claims only retries of
/// templates it loads.
#[must_use]
pub fn schedule_key(namespace: &str) -> String {
    format!("tasker:schedule:{namespace}")
}

/// The sorted set of `namespace`'s steps that wait for a worker (their
/// callable reached no queue), scored by when to try publishing each again.
#[must_use]
pub fn waiting_key(namespace: &str) -> String {
    format!("tasker:waiting:{namespace}")
}

/// Every worker that has announced itself, by worker id: its last
/// announcement and when a coordinator received it.
pub const WORKERS: &str = "tasker:workers";

/// One attempt of one step, as the schedules name it: a member of a
/// namespace's retry schedule (`attempt` is the one that failed) or of its
/// lease set (`attempt` is the one running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// The sorted-set member: `<task_id>|<namespace>|<name>|<version>|<step>|<attempt>`,
    /// then `|<traceparent>` for a retry that carries one.
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

    /// Reads a member back; `None` if it is not one.
    #[must_use]
    pub fn parse(member: String) -> Option<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_back_with_and_without_a_trace() {
        let id = Uuid::new_v4();
        let plain = StepRef::parse(format!("{id}|ns|name|1.0.0|3|2")).unwrap();
        assert_eq!(
            (plain.task_id, plain.step, plain.attempt, plain.trace),
            (id, 3, 2, None)
        );
        assert_eq!(plain.template.2, "1.0.0");
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let traced = StepRef::parse(format!("{id}|ns|name|1.0.0|0|1|{tp}")).unwrap();
        assert_eq!(traced.trace.as_deref(), Some(tp));
        assert_eq!(StepRef::parse(format!("{id}|ns|name|1.0.0|x|1")), None);
        assert_eq!(StepRef::parse("a|b".to_owned()), None);
    }
}
