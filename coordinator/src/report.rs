//! Text views of a task for people: the step table and the timeline.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use tasker_protocol::{StepReport, StepState, TaskFinished};

/// A table of the task's steps: state, attempts, duration, and the last
/// error.
#[must_use]
pub fn status_table(report: &TaskFinished) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "task {}  {}/{}@{}  {:?}",
        report.task_id, report.namespace, report.name, report.version, report.status
    );
    let width = report
        .steps
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:<13}  {:>8}  {:>9}  ERROR",
        "STEP", "STATE", "ATTEMPTS", "DURATION"
    );
    for step in &report.steps {
        let duration = match (step.started_at, step.finished_at) {
            (Some(a), Some(b)) => format_ms(millis_between(a, b)),
            _ => "-".to_owned(),
        };
        let error = match (&step.error, step.state) {
            (Some(e), StepState::Failed | StepState::WaitingRetry | StepState::Enqueued) => {
                format!("{}: {}", e.code, e.message)
            }
            (Some(e), StepState::Completed) => format!("(recovered from {})", e.code),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<13}  {:>8}  {:>9}  {error}",
            step.name,
            state_name(step.state),
            step.attempts,
            duration
        );
    }
    out
}

/// The steps on a time axis from the task's creation, one bar per step,
/// so that parallel branches and the join that waits for them are visible.
#[must_use]
pub fn timeline(report: &TaskFinished) -> String {
    const WIDTH: f64 = 40.0;
    let origin = report.created_at;
    let end = report
        .steps
        .iter()
        .filter_map(|s| s.finished_at)
        .max()
        .unwrap_or(report.finished_at)
        .max(origin);
    let span = millis_between(origin, end).max(1) as f64;
    let mut steps: Vec<&StepReport> = report.steps.iter().collect();
    steps.sort_by_key(|s| s.started_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(4);
    let mut out = String::new();
    for step in steps {
        let (Some(start), Some(finish)) = (step.started_at, step.finished_at) else {
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:<40}  {}",
                step.name,
                "",
                "",
                state_name(step.state)
            );
            continue;
        };
        let from = (millis_between(origin, start) as f64 / span * WIDTH).round() as usize;
        let to = ((millis_between(origin, finish) as f64 / span * WIDTH).round() as usize).max(from + 1);
        let bar = format!("{}{}", " ".repeat(from), "█".repeat(to - from));
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:<40}  {} in {} (attempt {})",
            step.name,
            format!("+{}", format_ms(millis_between(origin, start))),
            bar,
            state_name(step.state),
            format_ms(millis_between(start, finish)),
            step.attempts
        );
    }
    out
}

/// The state's name as the wire format spells it.
#[must_use]
pub fn state_name(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "pending",
        StepState::Enqueued => "enqueued",
        StepState::WaitingRetry => "waiting_retry",
        StepState::Completed => "completed",
        StepState::Failed => "failed",
        StepState::Blocked => "blocked",
    }
}

fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_milliseconds().max(0)
}

fn format_ms(ms: i64) -> String {
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}
