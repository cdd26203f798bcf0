//! What a chaos run found: the counts that must be zero, and for each
//! fault, how the tasks around it fared.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;
use uuid::Uuid;

use super::fault::{Fault, TAKEOVER_BOUND};

/// What a chaos run found.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// Tasks submitted.
    pub tasks_submitted: usize,
    /// Tasks that finished `complete`.
    pub tasks_complete: usize,
    /// Tasks that finished `failed` (none should: the handlers never fail).
    pub tasks_failed: usize,
    /// Tasks that never finished in time.
    pub tasks_lost: usize,
    /// The first few lost tasks, to look into.
    pub lost_task_ids: Vec<Uuid>,
    /// Joins released other than once, or started before a parent finished.
    pub joins_not_fired_once: usize,
    /// Steps whose stored result changed after their task finished.
    pub results_changed: usize,
    /// `hand_off` tasks whose step completed with its child task, complete.
    pub child_tasks: usize,
    /// `hand_off` tasks that finished without a child task that completed.
    pub child_tasks_wrong: usize,
    /// Handler runs beyond one per (task, step, attempt).
    pub duplicate_executions: u64,
    /// Handler runs in all.
    pub executions: u64,
    /// Step results published a second time on purpose.
    pub duplicates_published: usize,
    /// Each fault, and how the tasks around it fared.
    pub faults: Vec<FaultRecovery>,
    /// The whole run, in seconds.
    pub seconds: f64,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecovery {
    /// Which fault.
    pub fault: Fault,
    /// Whether tasks finished again after it, within
    /// [`super::RECOVERY_LIMIT`]: false also when too few tasks were in
    /// flight to tell, as when submitting had stopped at `max_tasks`.
    pub recovered: bool,
    /// From the fault (from the resume, for a pause) to
    /// [`super::RECOVERY_TASKS`] more tasks finishing, in seconds; the whole
    /// wait when it did not recover.
    pub recovery_seconds: f64,
    /// For a pause: how long the process stayed frozen, in seconds.
    pub paused_seconds: Option<f64>,
    /// Tasks in flight when the fault struck: accepted before it, finished
    /// after it.
    pub in_flight: usize,
    /// When the last of those finished, in seconds after the fault struck;
    /// `None` if one never did.
    pub in_flight_done_seconds: Option<f64>,
    /// For a pause: how many of those finished while the process was still
    /// frozen. For a coordinator or a worker, every one must: the others
    /// took its work over.
    pub done_while_frozen: Option<usize>,
    /// The latency of the tasks alive at some point between the fault and
    /// the end of the pause (or the injection), accepted to finished.
    pub latency: Option<Latency>,
    /// Handler runs beyond one per attempt, from this fault to the next.
    pub duplicate_executions: u64,
    /// For the pause of a coordinator or a worker: whether it ran on after
    /// SIGCONT, connected again if it lost its connection while frozen.
    pub resumed: Option<bool>,
}

impl FaultRecovery {
    /// For the pause of a coordinator or a worker: whether every task in
    /// flight at the freeze finished while it was frozen, within
    /// [`TAKEOVER_BOUND`]. `None` for other faults.
    #[must_use]
    pub fn taken_over_in_time(&self) -> Option<bool> {
        if !self.fault.freezes_a_process() {
            return None;
        }
        Some(
            self.done_while_frozen == Some(self.in_flight)
                && self
                    .in_flight_done_seconds
                    .is_some_and(|s| s <= TAKEOVER_BOUND.as_secs_f64()),
        )
    }
}

/// Percentiles of task latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// How many tasks.
    pub tasks: usize,
    /// The median.
    pub p50_ms: i64,
    /// The 99th percentile.
    pub p99_ms: i64,
    /// The slowest.
    pub max_ms: i64,
}

impl Latency {
    /// The percentiles of `latencies`; `None` if there are none.
    #[must_use]
    pub fn of(mut latencies: Vec<i64>) -> Option<Self> {
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            tasks: latencies.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: latencies[latencies.len() - 1],
        })
    }
}

/// When a task was accepted and when it finished, as its coordinator
/// recorded them (unix ms).
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskTimes {
    pub created: i64,
    pub finished: i64,
}

/// A fault as it was injected, before the tasks around it are looked at.
#[derive(Debug, Clone)]
pub(super) struct Injected {
    pub fault: Fault,
    /// When it struck (unix ms).
    pub struck: i64,
    /// When it ended (unix ms): the SIGCONT of a pause, or the end of the
    /// injection.
    pub ended: i64,
    pub recovered: bool,
    pub recovery_seconds: f64,
    pub resumed: Option<bool>,
    /// Handler runs beyond one per attempt when it struck.
    pub extra_runs_before: u64,
}

impl Injected {
    /// How the tasks in `times` fared around this fault; `extra_runs_after`
    /// is the count of handler runs beyond one per attempt when the next
    /// fault struck, or at the end.
    pub fn assess(&self, times: &HashMap<Uuid, TaskTimes>, extra_runs_after: u64) -> FaultRecovery {
        let in_flight: Vec<&TaskTimes> = times
            .values()
            .filter(|t| t.created < self.struck && t.finished > self.struck)
            .collect();
        let last_done = in_flight.iter().map(|t| t.finished).max();
        let alive: Vec<i64> = times
            .values()
            .filter(|t| t.created <= self.ended && t.finished >= self.struck)
            .map(|t| t.finished - t.created)
            .collect();
        FaultRecovery {
            fault: self.fault,
            recovered: self.recovered,
            recovery_seconds: self.recovery_seconds,
            paused_seconds: self
                .fault
                .is_pause()
                .then(|| (self.ended - self.struck) as f64 / 1000.0),
            in_flight: in_flight.len(),
            in_flight_done_seconds: last_done.map(|t| (t - self.struck).max(0) as f64 / 1000.0),
            done_while_frozen: self
                .fault
                .is_pause()
                .then(|| in_flight.iter().filter(|t| t.finished <= self.ended).count()),
            latency: Latency::of(alive),
            duplicate_executions: extra_runs_after.saturating_sub(self.extra_runs_before),
            resumed: self.resumed,
        }
    }
}

impl ChaosReport {
    /// Whether nothing was lost, every join fired once, the work of every
    /// frozen coordinator or worker was taken over within
    /// [`TAKEOVER_BOUND`], and every frozen one ran on once it resumed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.tasks_lost == 0
            && self.joins_not_fired_once == 0
            && self.results_changed == 0
            && self.tasks_failed == 0
            && self.child_tasks_wrong == 0
            && self
                .faults
                .iter()
                .all(|f| f.taken_over_in_time() != Some(false) && f.resumed != Some(false))
    }

    /// The report as two tables: the counts, then the faults.
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = String::new();
        let rows: [(&str, String); 12] = [
            ("tasks submitted", self.tasks_submitted.to_string()),
            ("tasks finished complete", self.tasks_complete.to_string()),
            ("tasks finished failed", self.tasks_failed.to_string()),
            ("tasks lost (not finished in time)", self.tasks_lost.to_string()),
            (
                "joins fired other than once",
                self.joins_not_fired_once.to_string(),
            ),
            (
                "steps whose recorded result changed",
                self.results_changed.to_string(),
            ),
            ("tasks done with their child task", self.child_tasks.to_string()),
            (
                "tasks done without their child task",
                self.child_tasks_wrong.to_string(),
            ),
            ("handler executions", self.executions.to_string()),
            (
                "handler executions beyond one per attempt",
                self.duplicate_executions.to_string(),
            ),
            (
                "step results published twice on purpose",
                self.duplicates_published.to_string(),
            ),
            ("run time", format!("{:.1} s", self.seconds)),
        ];
        for (k, v) in rows {
            let _ = writeln!(t, "{k:<45} {v:>10}");
        }
        let _ = writeln!(
            t,
            "\n{:<20} {:>7} {:>9} {:>8} {:>9} {:>8} {:>24} {:>6} {:>8}",
            "fault",
            "paused",
            "recovery",
            "in flight",
            "all done",
            "frozen",
            "latency p50/p99/max ms",
            "extra",
            "resumed"
        );
        for f in &self.faults {
            let secs = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"));
            let recovery = if f.recovered {
                format!("{:.2} s", f.recovery_seconds)
            } else {
                "none".to_owned()
            };
            let latency = f.latency.map_or_else(
                || "-".to_owned(),
                |l| format!("{}/{}/{}", l.p50_ms, l.p99_ms, l.max_ms),
            );
            let frozen = f
                .done_while_frozen
                .map_or_else(|| "-".to_owned(), |d| format!("{d}/{}", f.in_flight));
            let resumed = match f.resumed {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            };
            let _ = writeln!(
                t,
                "{:<20} {:>7} {:>9} {:>8} {:>9} {:>8} {:>24} {:>6} {:>8}",
                format!("{:?}", f.fault),
                secs(f.paused_seconds),
                recovery,
                f.in_flight,
                secs(f.in_flight_done_seconds),
                frozen,
                latency,
                f.duplicate_executions,
                resumed
            );
        }
        let _ = writeln!(
            t,
            "(paused: how long it was frozen; recovery: until {} more tasks finished, from the resume for a pause; \
             in flight: tasks accepted before the fault and finished after it; all done: when the last of them \
             finished, after the fault; frozen: how many of them finished while it was frozen; latency: of the tasks \
             alive during the fault; extra: handler runs beyond one per attempt until the next fault)",
            super::RECOVERY_TASKS
        );
        for f in &self.faults {
            if let Some(in_time) = f.taken_over_in_time() {
                let verdict = if in_time { "was" } else { "was NOT" };
                let _ = writeln!(
                    t,
                    "{:?}: the work it held {verdict} taken over within {} s",
                    f.fault,
                    TAKEOVER_BOUND.as_secs()
                );
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(spans: &[(i64, i64)]) -> HashMap<Uuid, TaskTimes> {
        spans
            .iter()
            .map(|&(created, finished)| (Uuid::new_v4(), TaskTimes { created, finished }))
            .collect()
    }

    fn pause(fault: Fault, struck: i64, ended: i64) -> Injected {
        Injected {
            fault,
            struck,
            ended,
            recovered: true,
            recovery_seconds: 0.5,
            resumed: Some(true),
            extra_runs_before: 3,
        }
    }

    #[test]
    fn a_pause_whose_work_finished_while_frozen_was_taken_over() {
        // Frozen from 10 s to 50 s: the two tasks in flight finish at 11 s
        // and 24 s; the one after finishes on its own; one was done before.
        let t = times(&[(9_000, 11_000), (9_500, 24_000), (12_000, 12_100), (1_000, 2_000)]);
        let f = pause(Fault::PauseWorker, 10_000, 50_000).assess(&t, 5);
        assert_eq!((f.in_flight, f.done_while_frozen), (2, Some(2)));
        assert_eq!(f.in_flight_done_seconds, Some(14.0));
        assert_eq!(f.duplicate_executions, 2);
        assert_eq!(f.latency.unwrap().tasks, 3);
        assert_eq!(f.taken_over_in_time(), Some(true));
    }

    #[test]
    fn work_that_waited_for_the_resume_was_not_taken_over() {
        let t = times(&[(9_000, 11_000), (9_500, 51_000)]);
        let f = pause(Fault::PauseCoordinator, 10_000, 50_000).assess(&t, 3);
        assert_eq!(f.done_while_frozen, Some(1));
        assert_eq!(f.taken_over_in_time(), Some(false));
        // Within the pause, but past the bound, is not in time either.
        let t = times(&[(9_000, 45_000)]);
        let f = pause(Fault::PauseCoordinator, 10_000, 50_000).assess(&t, 3);
        assert_eq!(f.taken_over_in_time(), Some(false));
        // A server's pause is not about takeover.
        let f = pause(Fault::PauseRedis, 10_000, 50_000).assess(&t, 3);
        assert_eq!(f.taken_over_in_time(), None);
    }

    #[test]
    fn latency_percentiles() {
        let l = Latency::of((1..=100).collect()).unwrap();
        assert_eq!((l.tasks, l.p50_ms, l.p99_ms, l.max_ms), (100, 51, 99, 100));
        assert!(Latency::of(Vec::new()).is_none());
    }
}
