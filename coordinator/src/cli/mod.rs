//! The `tasker` command line: one file per group of commands.
//!
//! - `coordinator`: run a coordinator, every setting from a flag or the
//!   environment;
//! - `submit`: submit a task;
//! - `inspect`: `status`, `list` and `watch`, read from the store;
//! - `operate`: `retry`, `resolve` and `cancel`, carried out by a
//!   coordinator;
//! - `dlq`: the dead-letter queue;
//! - `workers`: the live workers, by namespace;
//! - `templates`: `validate`, `templates list` and `templates graph`;
//! - `demo`: the seed's workflow, once;
//! - `args`: the flags several commands share; `output`: printing and
//!   exit codes; `report` and `graph`: the text views they print.

mod args;
mod coordinator;
mod demo;
mod dlq;
mod graph;
mod inspect;
mod operate;
mod output;
mod report;
mod submit;
mod templates;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::args::Servers;
use self::output::{EXIT_CODES, is_broken_pipe};

/// `tasker`'s command line.
#[derive(Debug, Parser)]
#[command(name = "tasker", version, about = "Run and inspect Tasker workflows", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    servers: Servers,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a coordinator.
    #[command(after_help = "Example:\n  tasker coordinator --templates templates/ --retention 3d")]
    Coordinator(coordinator::CoordinatorArgs),
    /// Submit a task.
    #[command(
        after_help = "Example:\n  tasker submit microservices user_registration \\\n    --context '{\"user_info\":{\"email\":\"a@b.io\",\"name\":\"A\",\"plan\":\"pro\"}}' --wait --json"
    )]
    Submit(submit::SubmitArgs),
    /// Show a task's steps.
    #[command(after_help = "Example:\n  tasker status 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13")]
    Status(inspect::StatusArgs),
    /// Retry a failed task from its failed steps, keeping every completed
    /// result: failed steps and the steps they blocked go back to pending
    /// with a fresh budget of attempts, and the task runs on.
    #[command(
        after_help = "Examples:\n  tasker retry 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker retry 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --step setup_billing_profile --wait\n\nRefused (exit code 4) for a task that is complete or still running."
    )]
    Retry(operate::RetryArgs),
    /// Cancel a running task: no step starts any more, the steps running
    /// now finish, and the task ends cancelled.
    #[command(
        after_help = "Examples:\n  tasker cancel 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker cancel 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --wait\n\nRefused (exit code 4) for a task that has ended."
    )]
    Cancel(operate::CancelArgs),
    /// Complete a failed step by hand with a result; the steps it blocked
    /// then run.
    #[command(
        after_help = "Example:\n  tasker resolve 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --step setup_billing_profile \\\n    --result '{\"billing_id\":\"bill_manual\",\"plan\":\"pro\"}' --wait"
    )]
    Resolve(operate::ResolveArgs),
    /// Follow a task live until it ends: its progress, its DAG with each
    /// step's state, and the step table.
    #[command(
        after_help = "Examples:\n  tasker watch 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker watch 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --json   # one JSON report per change"
    )]
    Watch(inspect::WatchArgs),
    /// Inspect the dead-letter queue, and put messages back on their queue.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// List recent tasks, newest first.
    #[command(
        after_help = "Examples:\n  tasker list\n  tasker list --namespace microservices --status failed --limit 5\n  tasker list --status cancelled --json"
    )]
    List(inspect::ListArgs),
    /// Check template files or directories.
    #[command(after_help = "Example:\n  tasker validate templates/")]
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the templates in a directory, or draw one's DAG.
    Templates {
        #[command(subcommand)]
        command: templates::TemplatesCommand,
    },
    /// List the live workers of each namespace: their service, language,
    /// host, concurrency and callables.
    #[command(after_help = "Examples:\n  tasker workers\n  tasker workers --namespace microservices --json")]
    Workers(workers::WorkersArgs),
    /// Run the user-registration diamond once and show its timeline.
    #[command(after_help = "Example:\n  tasker demo --email jane@example.com --plan pro")]
    Demo(demo::DemoArgs),
}

/// Runs the command `cli` names, with telemetry for as long as it runs,
/// and prints what went wrong, if anything.
pub async fn run(cli: Cli) -> ExitCode {
    let service = match cli.command {
        Command::Coordinator(_) => "tasker-coordinator",
        _ => "tasker-cli",
    };
    // Flushes spans when the command returns.
    let _telemetry = tasker_runtime::telemetry::init(service);
    match dispatch(cli).await {
        Ok(code) => code,
        // The reader went away (`tasker list | head`): nothing is wrong.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::error_text(&e));
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli { servers, command } = cli;
    match command {
        Command::Coordinator(args) => coordinator::run(args, servers).await,
        Command::Submit(args) => submit::run(args, &servers.amqp_url).await,
        Command::Status(args) => inspect::status(args, &servers.redis_url).await,
        Command::List(args) => inspect::list(args, &servers.redis_url).await,
        Command::Watch(args) => inspect::watch(args, &servers.redis_url).await,
        Command::Retry(args) => operate::retry(args, &servers).await,
        Command::Resolve(args) => operate::resolve(args, &servers).await,
        Command::Cancel(args) => operate::cancel(args, &servers).await,
        Command::Dlq { command } => dlq::run(command, &servers.amqp_url).await,
        Command::Validate { paths } => templates::validate(&paths),
        Command::Templates { command } => templates::run(command),
        Command::Workers(args) => workers::run(args, &servers.redis_url).await,
        Command::Demo(args) => demo::run(args, &servers.amqp_url).await,
    }
}
