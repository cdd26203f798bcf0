//! Text views of a task for people: the step table and the timeline.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use tasker_protocol::{StepReport, StepState, TaskFinished, TaskStatus, TaskTemplate};

use tasker_coordinator::store::TaskSummary;

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
    if let Some(parent) = &report.parent {
        let _ = writeln!(
            out,
            "child of task {} ({}/{}), step {} attempt {}",
            parent.task_id, parent.namespace, parent.name, parent.step, parent.attempt
        );
    }
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
            step.state.as_str(),
            step.attempts,
            duration
        );
    }
    for step in &report.steps {
        if let Some(callable) = &step.waiting_for_worker {
            let _ = writeln!(
                out,
                "{} waits for a worker that serves {callable}: no service has declared it yet (see: tasker workers)",
                step.name
            );
        }
    }
    for step in &report.steps {
        if let Some(child) = step.child_task_id {
            let waits = if step.state == StepState::Enqueued {
                "waits for"
            } else {
                "started"
            };
            let _ = writeln!(
                out,
                "{} {waits} child task {child} (see: tasker status {child})",
                step.name
            );
        }
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
                step.state.as_str()
            );
            continue;
        };
        let from = (millis_between(origin, start) as f64 / span * WIDTH).round() as usize;
        let to = ((millis_between(origin, finish) as f64 / span * WIDTH).round() as usize).max(from + 1);
        let bar = format!("{}{}", " ".repeat(from), "█".repeat(to - from));
        let _ = write!(
            out,
            "{:<width$}  {:>7}  {:<40}  {} in {} (attempt {}",
            step.name,
            format!("+{}", format_ms(millis_between(origin, start))),
            bar,
            step.state.as_str(),
            format_ms(millis_between(start, finish)),
            step.attempts
        );
        match result_language(step) {
            Some(language) => {
                let _ = writeln!(out, ", {language})");
            }
            None => out.push_str(")\n"),
        }
    }
    out
}

/// The `language` a step's result names, as the example handlers' results
/// do, so that a timeline shows which language ran each step.
fn result_language(step: &StepReport) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        language: String,
    }
    let result = step.result.as_ref()?;
    serde_json::from_str::<Named>(result.get())
        .ok()
        .map(|n| n.language)
}

/// One frame of `tasker watch`: the task's progress, its DAG with each
/// step's state (when the template is at hand), and the step table.
#[must_use]
pub fn watch_frame(report: &TaskFinished, template: Option<&TaskTemplate>) -> String {
    const WIDTH: usize = 30;
    let done = report.steps.iter().filter(|s| s.state.is_terminal()).count();
    let total = report.steps.len().max(1);
    let filled = done * WIDTH / total;
    let mut out = format!(
        "{}/{}@{}  {}  [{}{}] {done}/{} steps done\n\n",
        report.namespace,
        report.name,
        report.version,
        status_name(report.status),
        "█".repeat(filled),
        "░".repeat(WIDTH - filled),
        report.steps.len(),
    );
    if let Some(template) = template {
        let states: Vec<StepState> = report.steps.iter().map(|s| s.state).collect();
        out.push_str(&super::graph::text(template, Some(&states)));
        out.push('\n');
    }
    out.push_str(&status_table(report));
    out
}

fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::Complete => "complete",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
    }
}

/// One line per dead-lettered message: id, type, task and reason.
#[must_use]
pub fn dead_letter_table(letters: &[tasker_coordinator::dlq::DeadLetter]) -> String {
    let wi = letters.iter().map(|l| l.id.len()).max().unwrap_or(0).max(2);
    let mut out = String::new();
    let _ = writeln!(out, "{:<wi$}  {:<20}  {:<36}  REASON", "ID", "TYPE", "TASK");
    for l in letters {
        let _ = writeln!(
            out,
            "{:<wi$}  {:<20}  {:<36}  {}",
            l.id,
            l.kind.as_deref().unwrap_or("-"),
            l.task_id.as_deref().unwrap_or("-"),
            l.reason.as_deref().unwrap_or("-")
        );
    }
    if letters.is_empty() {
        out.push_str("(no dead-lettered messages)\n");
    }
    out
}

/// One line per task: id, template, status, progress, age and duration.
#[must_use]
pub fn task_list(tasks: &[TaskSummary], now: DateTime<Utc>) -> String {
    let templates: Vec<String> = tasks
        .iter()
        .map(|t| format!("{}/{}@{}", t.namespace, t.name, t.version))
        .collect();
    let wt = templates.iter().map(String::len).max().unwrap_or(0).max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<wt$}  {:<8}  {:>5}  {:>9}  {:>9}",
        "TASK", "TEMPLATE", "STATUS", "STEPS", "AGE", "DURATION"
    );
    for (t, template) in tasks.iter().zip(&templates) {
        let status = status_name(t.status);
        let duration = t
            .finished_at
            .map_or_else(|| "-".to_owned(), |f| format_ms(millis_between(t.created_at, f)));
        let _ = writeln!(
            out,
            "{:<36}  {template:<wt$}  {status:<8}  {:>5}  {:>9}  {duration:>9}",
            t.task_id,
            format!("{}/{}", t.steps_done, t.steps),
            format_age(millis_between(t.created_at, now)),
        );
    }
    if tasks.is_empty() {
        out.push_str("(no tasks)\n");
    }
    out
}

fn format_age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// One line per template: namespace, name, version, steps and description.
#[must_use]
pub fn template_table<'a>(templates: impl Iterator<Item = &'a TaskTemplate>) -> String {
    let templates: Vec<&TaskTemplate> = templates.collect();
    let width = |f: &dyn Fn(&TaskTemplate) -> usize, min: usize| {
        templates.iter().map(|t| f(t)).max().unwrap_or(0).max(min)
    };
    let (wn, wm, wv) = (
        width(&|t| t.namespace.len(), 9),
        width(&|t| t.name.len(), 4),
        width(&|t| t.version.to_string().len(), 7),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<wn$}  {:<wm$}  {:<wv$}  STEPS  DESCRIPTION",
        "NAMESPACE", "NAME", "VERSION"
    );
    for t in &templates {
        let _ = writeln!(
            out,
            "{:<wn$}  {:<wm$}  {:<wv$}  {:>5}  {}",
            t.namespace,
            t.name,
            t.version.to_string(),
            t.steps.len(),
            t.description
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    if templates.is_empty() {
        out.push_str("(no templates)\n");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use tasker_protocol::{PROTOCOL_VERSION, StepFailure};

    fn at(ms: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(1_796_000_000_000 + ms)
    }

    fn step(
        name: &str,
        state: StepState,
        attempts: u32,
        span: Option<(i64, i64)>,
        error: Option<(&str, &str)>,
    ) -> StepReport {
        StepReport {
            name: name.to_owned(),
            state,
            attempts,
            started_at: span.and_then(|(a, _)| at(a)),
            finished_at: span.and_then(|(_, b)| at(b)),
            result: None,
            error: error.map(|(code, message)| StepFailure {
                retryable: false,
                code: code.to_owned(),
                message: message.to_owned(),
                retry_after_seconds: None,
            }),
            child_task_id: None,
            waiting_for_worker: None,
        }
    }

    /// A registration whose billing step ran out of attempts, after
    /// preferences recovered from a retry.
    fn failed_registration() -> TaskFinished {
        TaskFinished {
            protocol_version: PROTOCOL_VERSION,
            task_id: uuid::Uuid::from_u128(0x0b6f_3c1e_8d2a_4f5e_9c41_7e2b_9a0d_5f13),
            namespace: "microservices".to_owned(),
            name: "user_registration".to_owned(),
            version: "1.0.0".to_owned(),
            status: TaskStatus::Failed,
            created_at: at(0).unwrap(),
            finished_at: at(12_480).unwrap(),
            steps: vec![
                step(
                    "create_user_account",
                    StepState::Completed,
                    1,
                    Some((3, 54)),
                    None,
                ),
                step(
                    "setup_billing_profile",
                    StepState::Failed,
                    3,
                    Some((9_100, 9_180)),
                    Some(("PAYMENT_GATEWAY_TIMEOUT", "billing gateway did not answer in 5s")),
                ),
                step(
                    "initialize_preferences",
                    StepState::Completed,
                    2,
                    Some((1_060, 1_131)),
                    Some(("PREFERENCES_STORE_BUSY", "try again")),
                ),
                step("send_welcome_sequence", StepState::Blocked, 0, None, None),
                step("update_user_status", StepState::Blocked, 0, None, None),
            ],
            parent: None,
            results_omitted: false,
            request_id: None,
        }
    }

    /// A support refund whose payment runs as a child task in the payments
    /// namespace, and that child.
    fn refund_and_child() -> (TaskFinished, TaskFinished) {
        let parent_id = uuid::Uuid::from_u128(0x3a9c_51d2_0e47_4b8f_a1c6_2d90_7e35_b804);
        let child_id = uuid::Uuid::from_u128(0x9e02_7b64_c13a_5d8e_8f20_41c7_d6a9_3b15);
        let mut waiting = step("execute_refund_workflow", StepState::Enqueued, 1, None, None);
        waiting.child_task_id = Some(child_id);
        let parent = TaskFinished {
            protocol_version: PROTOCOL_VERSION,
            task_id: parent_id,
            namespace: "customer_success".to_owned(),
            name: "process_refund".to_owned(),
            version: "1.0.0".to_owned(),
            status: TaskStatus::Running,
            created_at: at(0).unwrap(),
            finished_at: at(0).unwrap(),
            steps: vec![
                step(
                    "validate_refund_request",
                    StepState::Completed,
                    1,
                    Some((2, 40)),
                    None,
                ),
                step(
                    "check_refund_policy",
                    StepState::Completed,
                    1,
                    Some((45, 81)),
                    None,
                ),
                step(
                    "get_manager_approval",
                    StepState::Completed,
                    1,
                    Some((86, 120)),
                    None,
                ),
                waiting,
                step("update_ticket_status", StepState::Pending, 0, None, None),
            ],
            parent: None,
            results_omitted: false,
            request_id: None,
        };
        let child = TaskFinished {
            protocol_version: PROTOCOL_VERSION,
            task_id: child_id,
            namespace: "payments".to_owned(),
            name: "process_refund".to_owned(),
            version: "1.1.0".to_owned(),
            status: TaskStatus::Running,
            created_at: at(130).unwrap(),
            finished_at: at(130).unwrap(),
            steps: vec![
                step(
                    "validate_payment_eligibility",
                    StepState::Completed,
                    1,
                    Some((133, 170)),
                    None,
                ),
                step(
                    "process_gateway_refund",
                    StepState::WaitingRetry,
                    1,
                    Some((175, 260)),
                    Some(("GATEWAY_TIMEOUT", "the payment gateway did not answer in time")),
                ),
                step("update_payment_records", StepState::Pending, 0, None, None),
                step("record_refund_audit", StepState::Pending, 0, None, None),
                step("notify_customer", StepState::Pending, 0, None, None),
            ],
            parent: Some(tasker_protocol::ParentStep {
                task_id: parent_id,
                namespace: "customer_success".to_owned(),
                name: "process_refund".to_owned(),
                version: "1.0.0".to_owned(),
                step: "execute_refund_workflow".to_owned(),
                attempt: 1,
            }),
            results_omitted: false,
            request_id: None,
        };
        (parent, child)
    }

    #[test]
    fn snapshot_status_table_of_a_parent_and_its_child() {
        let (parent, child) = refund_and_child();
        insta::assert_snapshot!(format!("{}\n{}", status_table(&parent), status_table(&child)));
    }

    #[test]
    fn the_timeline_names_the_language_a_result_names() {
        let mut report = failed_registration();
        report.steps[0].result =
            Some(serde_json::value::to_raw_value(&serde_json::json!({"language": "ruby"})).unwrap());
        report.steps[2].result =
            Some(serde_json::value::to_raw_value(&serde_json::json!({"theme": "light"})).unwrap());
        let timeline = timeline(&report);
        let lines: Vec<&str> = timeline.lines().collect();
        assert!(lines[0].starts_with("create_user_account"), "{timeline}");
        assert!(
            lines[0].ends_with("completed in 51ms (attempt 1, ruby)"),
            "{timeline}"
        );
        assert!(lines[1].starts_with("initialize_preferences"), "{timeline}");
        assert!(lines[1].ends_with("completed in 71ms (attempt 2)"), "{timeline}");
    }

    #[test]
    fn snapshot_status_table() {
        insta::assert_snapshot!(status_table(&failed_registration()));
    }

    #[test]
    fn snapshot_task_list() {
        let report = failed_registration();
        let running = TaskSummary {
            task_id: uuid::Uuid::from_u128(0x7d1e_0000_0000_4000_8000_0000_0000_0001),
            namespace: "payments".to_owned(),
            name: "process_refund".to_owned(),
            version: "1.1.0".to_owned(),
            status: TaskStatus::Running,
            created_at: at(60_000).unwrap(),
            finished_at: None,
            steps: 5,
            steps_done: 2,
        };
        let failed = TaskSummary {
            task_id: report.task_id,
            namespace: report.namespace,
            name: report.name,
            version: report.version,
            status: report.status,
            created_at: report.created_at,
            finished_at: Some(report.finished_at),
            steps: 5,
            steps_done: 5,
        };
        insta::assert_snapshot!(task_list(&[running, failed], at(3_700_000).unwrap()));
    }

    #[test]
    fn snapshot_watch_frame() {
        let text = include_str!("../../../templates/microservices/user_registration.yaml");
        let template = TaskTemplate::from_yaml("user_registration.yaml", text).unwrap();
        let mut report = failed_registration();
        // Midway: billing waits for its retry, the join has not started.
        report.status = TaskStatus::Running;
        report.steps[1].state = StepState::WaitingRetry;
        report.steps[3].state = StepState::Pending;
        report.steps[4].state = StepState::Pending;
        insta::assert_snapshot!(watch_frame(&report, Some(&template)));
    }

    #[test]
    fn snapshot_template_table() {
        let text = include_str!("../../../templates/microservices/user_registration.yaml");
        let template = TaskTemplate::from_yaml("user_registration.yaml", text).unwrap();
        insta::assert_snapshot!(template_table([&template].into_iter()));
    }
}
