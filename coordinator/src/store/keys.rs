//! The store's key scheme (see the schema in [`crate::store`]): the keys,
//! and the members of the lease sets and retry schedules.

use tasker_protocol::TaskTemplate;
use uuid::Uuid;

/// Every namespace a coordinator has served, with when one last started
/// serving it (unix ms).
pub const NAMESPACES: &str = "tasker:namespaces";

/// Every worker that has announced itself, by worker id: its last
/// announcement and when a coordinator received it.
pub const WORKERS: &str = "tasker:workers";

/// How many shards the store has: fixed when the first coordinator
/// connects to an empty store, and read by every process after.
pub const SHARDS: &str = "tasker:shards";

/// The most shards a store may have.
pub const MAX_SHARDS: u16 = 1024;

/// Where a task's keys are: the store's tasks are split into shards by
/// their id, and every key a script touches for a task (its hash, and its
/// shard's lease set, retry schedule, waiting set and task index) carries
/// the shard's hash tag, so that a Redis Cluster keeps them in one slot.
///
/// A store of one shard, the default on a single Redis, has the keys it
/// had before shards existed: `tasker:{<task_id>}`, `tasker:leases:<ns>`
/// and so on, without a shared tag, since a single Redis has no slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpace {
    shards: u16,
}

/// One shard of a [`KeySpace`], `0..shards`.
pub type Shard = u16;

impl KeySpace {
    /// The key space of `shards` shards (1 to [`MAX_SHARDS`]).
    ///
    /// # Panics
    ///
    /// If `shards` is out of range; [`Self::checked`] says so instead.
    #[must_use]
    pub fn new(shards: u16) -> Self {
        Self::checked(shards).expect("a shard count from 1 to MAX_SHARDS")
    }

    /// The key space of `shards` shards; `None` unless 1 to [`MAX_SHARDS`].
    #[must_use]
    pub fn checked(shards: u16) -> Option<Self> {
        (1..=MAX_SHARDS).contains(&shards).then_some(Self { shards })
    }

    /// How many shards there are.
    #[must_use]
    pub fn shard_count(self) -> u16 {
        self.shards
    }

    /// Every shard.
    pub fn shards(self) -> impl Iterator<Item = Shard> {
        0..self.shards
    }

    /// The shard a task belongs to: its id's 128 bits, mixed (the
    /// finalizer of splitmix64), so that ids whose low bits repeat, such as
    /// time-based ones, still spread. Every coordinator must agree on it,
    /// so it never changes.
    #[must_use]
    pub fn shard_of(self, task_id: Uuid) -> Shard {
        let bits = task_id.as_u128();
        #[allow(clippy::cast_possible_truncation)] // the two halves, on purpose
        let mut x = (bits as u64) ^ ((bits >> 64) as u64);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        u16::try_from(x % u64::from(self.shards)).expect("a shard is below the count")
    }

    /// `tasker:{<shard>}:<what>`, or `tasker:<unsharded>` in a store of one
    /// shard.
    fn key(self, shard: Shard, what: std::fmt::Arguments<'_>, unsharded: std::fmt::Arguments<'_>) -> String {
        if self.shards == 1 {
            format!("tasker:{unsharded}")
        } else {
            format!("tasker:{{{shard}}}:{what}")
        }
    }

    /// The key of a task's hash.
    #[must_use]
    pub fn task(self, task_id: Uuid) -> String {
        self.key(
            self.shard_of(task_id),
            format_args!("task:{task_id}"),
            format_args!("{{{task_id}}}"),
        )
    }

    /// The sorted set of a shard's running attempts of `namespace`, scored
    /// by their lease deadline.
    #[must_use]
    pub fn leases(self, shard: Shard, namespace: &str) -> String {
        self.key(
            shard,
            format_args!("leases:{namespace}"),
            format_args!("leases:{namespace}"),
        )
    }

    /// The sorted set of a shard's scheduled retries of `namespace`, scored
    /// by when each is due. One per namespace, so that a coordinator claims
    /// only retries of templates it loads.
    #[must_use]
    pub fn schedule(self, shard: Shard, namespace: &str) -> String {
        self.key(
            shard,
            format_args!("schedule:{namespace}"),
            format_args!("schedule:{namespace}"),
        )
    }

    /// The sorted set of a shard's steps of `namespace` that wait for a
    /// worker (their callable reached no queue), scored by when to try
    /// publishing each again.
    #[must_use]
    pub fn waiting(self, shard: Shard, namespace: &str) -> String {
        self.key(
            shard,
            format_args!("waiting:{namespace}"),
            format_args!("waiting:{namespace}"),
        )
    }

    /// A shard's tasks by creation time (unix ms), newest last, for `tasker
    /// list`. Entries of tasks that expired are dropped as `list` meets
    /// them, and anything older than twice the retention when a task is
    /// indexed.
    #[must_use]
    pub fn index(self, shard: Shard) -> String {
        self.key(shard, format_args!("tasks"), format_args!("tasks"))
    }

    /// The lease set of `task_id`'s shard for `namespace`.
    #[must_use]
    pub fn leases_of(self, task_id: Uuid, namespace: &str) -> String {
        self.leases(self.shard_of(task_id), namespace)
    }

    /// The retry schedule of `task_id`'s shard for `namespace`.
    #[must_use]
    pub fn schedule_of(self, task_id: Uuid, namespace: &str) -> String {
        self.schedule(self.shard_of(task_id), namespace)
    }

    /// The waiting set of `task_id`'s shard for `namespace`.
    #[must_use]
    pub fn waiting_of(self, task_id: Uuid, namespace: &str) -> String {
        self.waiting(self.shard_of(task_id), namespace)
    }
}

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

    #[test]
    fn one_shard_keeps_the_keys_of_a_store_without_shards() {
        let keys = KeySpace::new(1);
        let id = Uuid::nil();
        assert_eq!(keys.task(id), format!("tasker:{{{id}}}"));
        assert_eq!(keys.leases_of(id, "ns"), "tasker:leases:ns");
        assert_eq!(keys.schedule_of(id, "ns"), "tasker:schedule:ns");
        assert_eq!(keys.waiting_of(id, "ns"), "tasker:waiting:ns");
        assert_eq!(keys.index(0), "tasker:tasks");
    }

    #[test]
    fn a_tasks_keys_share_its_shards_slot_and_tasks_spread_over_the_shards() {
        use redis::cluster_routing::Slot;
        let keys = KeySpace::new(16);
        let mut seen = [0_u32; 16];
        for _ in 0..1600 {
            let id = Uuid::new_v4();
            let shard = keys.shard_of(id);
            seen[usize::from(shard)] += 1;
            let slot = Slot::for_key(keys.task(id));
            for other in [
                keys.leases_of(id, "ns"),
                keys.schedule_of(id, "ns"),
                keys.waiting_of(id, "ns"),
                keys.index(shard),
            ] {
                assert_eq!(Slot::for_key(&other), slot, "{other} and {}", keys.task(id));
            }
        }
        assert!(seen.iter().all(|&n| n > 50), "shards were hit {seen:?} times");
        let id = Uuid::new_v4();
        assert_eq!(
            keys.task(id),
            format!("tasker:{{{}}}:task:{id}", keys.shard_of(id))
        );
        let time_based: Vec<Shard> = (0..64_u128)
            .map(|n| keys.shard_of(Uuid::from_u128(n << 64)))
            .collect();
        assert!(
            time_based.iter().collect::<std::collections::BTreeSet<_>>().len() > 8,
            "{time_based:?}"
        );
        assert_eq!(KeySpace::checked(0), None);
        assert_eq!(KeySpace::checked(MAX_SHARDS + 1), None);
    }
}
