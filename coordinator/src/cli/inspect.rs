//! `tasker status`, `list` and `watch`: where tasks stand, read from the
//! store.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tasker_coordinator::{Store, templates};
use tasker_protocol::TaskStatus;
use uuid::Uuid;

use super::args::{Output, TemplatesDir};
use super::output::{no_such_task, out, outln, print_json, task_exit};
use super::report;

/// `tasker status`'s arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The task's id.
    task_id: Uuid,
    #[command(flatten)]
    output: Output,
}

/// `tasker list`'s arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks of this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only tasks with this status.
    #[arg(long, value_enum)]
    status: Option<StatusFilter>,
    /// At most this many tasks.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    output: Output,
}

/// `tasker watch`'s arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The task's id.
    task_id: Uuid,
    /// For drawing the DAG.
    #[command(flatten)]
    templates: TemplatesDir,
    /// Seconds between looks.
    #[arg(long, default_value_t = 0.5)]
    interval: f64,
    /// Print one JSON report per change instead.
    #[command(flatten)]
    output: Output,
}

/// A task status, as `--status` takes it: every one there is.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatusFilter {
    /// Steps are still running or waiting.
    Running,
    /// Every step completed.
    Complete,
    /// A step failed.
    Failed,
    /// An operator cancelled it.
    Cancelled,
}

impl From<StatusFilter> for TaskStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::Running => Self::Running,
            StatusFilter::Complete => Self::Complete,
            StatusFilter::Failed => Self::Failed,
            StatusFilter::Cancelled => Self::Cancelled,
        }
    }
}

/// A store to read from, which never writes a task and so needs no
/// retention.
async fn store(redis_url: &str) -> anyhow::Result<Store> {
    Ok(Store::connect(redis_url, Duration::ZERO).await?)
}

/// Prints one task's steps.
pub async fn status(args: StatusArgs, redis_url: &str) -> anyhow::Result<ExitCode> {
    let Some(snapshot) = store(redis_url).await?.task(args.task_id).await? else {
        return Ok(no_such_task(args.task_id));
    };
    let report = snapshot.report();
    if args.output.json {
        print_json(&report)?;
    } else {
        out!("{}", report::status_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the newest tasks.
pub async fn list(args: ListArgs, redis_url: &str) -> anyhow::Result<ExitCode> {
    let tasks = store(redis_url)
        .await?
        .list_tasks(args.namespace.as_deref(), args.status.map(Into::into), args.limit)
        .await?;
    if args.output.json {
        print_json(&tasks)?;
    } else {
        out!("{}", report::task_list(&tasks, chrono::Utc::now()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Redraws the task whenever it changes, until it ends.
pub async fn watch(args: WatchArgs, redis_url: &str) -> anyhow::Result<ExitCode> {
    let store = store(redis_url).await?;
    // The DAG is drawn when the template is at hand; the table always is.
    let registry = templates::load_dir(&args.templates.dir).ok();
    let terminal = std::io::stdout().is_terminal();
    let json = args.output.json;
    let mut last = String::new();
    loop {
        let Some(snapshot) = store.task(args.task_id).await? else {
            return Ok(no_such_task(args.task_id));
        };
        let report = snapshot.report();
        let template = registry
            .as_ref()
            .and_then(|r| r.get(&report.namespace, &report.name, Some(&report.version)).ok());
        let frame = if json {
            serde_json::to_string(&report)?
        } else {
            report::watch_frame(&report, template.map(AsRef::as_ref))
        };
        if frame != last {
            if !json && terminal {
                // Clear the screen and draw from the top.
                out!("\x1b[2J\x1b[H{frame}");
            } else {
                outln!("{frame}");
            }
            last = frame;
        }
        if report.status != TaskStatus::Running {
            return Ok(task_exit(report.status));
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval.max(0.05))).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn list_filters_by_every_status_as_the_wire_spells_it() {
        for status in TaskStatus::ALL {
            let filter = StatusFilter::from_str(status.as_str(), false)
                .unwrap_or_else(|e| panic!("--status {} is refused: {e}", status.as_str()));
            assert_eq!(TaskStatus::from(filter), status);
        }
    }
}
