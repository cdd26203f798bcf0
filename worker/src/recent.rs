//! The results a worker published last, to answer a redelivered step
//! without running its handler again.

use std::collections::{HashMap, VecDeque};

use tasker_runtime::publisher::Outgoing;
use uuid::Uuid;

/// The results this worker published last, by (task, step, attempt): when a
/// step comes back after its result was confirmed but before its ack was
/// (a lost connection, a coordinator that republished after a crash), the
/// worker sends the result again instead of running the handler twice.
pub(crate) struct RecentResults {
    capacity: usize,
    order: VecDeque<(Uuid, String, u32)>,
    results: HashMap<(Uuid, String, u32), Outgoing>,
}

impl RecentResults {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            results: HashMap::with_capacity(capacity),
        }
    }

    pub(crate) fn get(&self, key: &(Uuid, String, u32)) -> Option<Outgoing> {
        self.results.get(key).cloned()
    }

    pub(crate) fn insert(&mut self, key: (Uuid, String, u32), result: Outgoing) {
        if self.capacity == 0 {
            return;
        }
        if self.results.insert(key.clone(), result).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }
}
