//! What every command prints through: stdout that a closed pipe ends
//! quietly, the exit codes, and the printing of a coordinator's reply.

use std::process::ExitCode;

use tasker_protocol::TaskStatus;
use tasker_runtime::Reply;
use uuid::Uuid;

use super::report;

/// `println!` that hands a closed stdout back as an error (`tasker list |
/// head`): `main` then ends quietly instead of panicking.
macro_rules! outln {
    () => {
        std::io::Write::write_all(&mut std::io::stdout(), b"\n")?
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` that hands a closed stdout back as an error, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*))?
    };
}

pub(crate) use {out, outln};

/// Exit code of a command that failed for a reason it printed.
pub const EXIT_ERROR: u8 = 1;
/// Exit code of bad usage, as clap's.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `submit --wait` and the like when the task failed or was
/// cancelled.
pub const EXIT_TASK_FAILED: u8 = 3;
/// Exit code when the coordinator rejected the request or refused the
/// command.
pub const EXIT_REJECTED: u8 = 4;
/// Exit code when no such task, template or dead-lettered message exists.
pub const EXIT_NOT_FOUND: u8 = 5;

/// The exit codes, for `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 error; 2 bad usage; 3 the task failed or was cancelled; 4 the request or command was refused; 5 no such task or template.";

/// Whether `e` is stdout going away (`tasker list | head`): nothing wrong.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `e` and its causes, each cause only if the text so far does not say it
/// already: the errors of lapin and redis-rs repeat their source in their
/// own message.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Says that `task_id` is not in the store, and returns the exit code for it.
pub fn no_such_task(task_id: Uuid) -> ExitCode {
    eprintln!(
        "error: no task {task_id}; it never existed, or it finished more than the retention period ago"
    );
    ExitCode::from(EXIT_NOT_FOUND)
}

/// The exit code of a task that has ended with `status`.
pub fn task_exit(status: TaskStatus) -> ExitCode {
    match status {
        TaskStatus::Complete => ExitCode::SUCCESS,
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Running => ExitCode::from(EXIT_TASK_FAILED),
    }
}

/// Prints a coordinator's reply, as a table or JSON, and returns its exit
/// code.
pub fn print_reply(reply: &Reply, json: bool) -> anyhow::Result<ExitCode> {
    Ok(match reply {
        Reply::Finished(report) => {
            if json {
                outln!("{}", serde_json::to_string(report)?);
            } else {
                out!("{}", report::status_table(report));
            }
            task_exit(report.status)
        }
        Reply::Command(reply) => {
            if json {
                outln!("{}", serde_json::to_string(reply)?);
            } else if reply.accepted {
                outln!("{}", reply.message);
            } else {
                eprintln!("refused: {}", reply.message);
            }
            if reply.accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            }
        }
        Reply::Rejected(rejected) => {
            if json {
                outln!("{}", serde_json::to_string(rejected)?);
            } else {
                eprintln!("rejected ({}): {}", rejected.code.as_str(), rejected.reason);
            }
            ExitCode::from(EXIT_REJECTED)
        }
    })
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_each_cause_once() {
        let root = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(root).context("redis at redis://host: connection refused");
        assert_eq!(error_text(&e), "redis at redis://host: connection refused");
        let e = anyhow::anyhow!("disk full").context("cannot write the report");
        assert_eq!(error_text(&e), "cannot write the report: disk full");
    }
}
