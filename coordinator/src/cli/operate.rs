//! `tasker retry`, `resolve` and `cancel`: an operator's command, carried
//! out by a coordinator of the task's namespace.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tasker_coordinator::Store;
use tasker_protocol::{PROTOCOL_VERSION, TaskAction, TaskCommand, TaskStatus};
use tasker_runtime::{Client, Reply};
use uuid::Uuid;

use super::args::{Output, Servers, Wait};
use super::output::{no_such_task, print_reply};

/// `tasker retry`'s arguments.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The task's id.
    task_id: Uuid,
    /// Retry only this failed step (and what it blocked).
    #[arg(long)]
    step: Option<String>,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    output: Output,
}

/// `tasker resolve`'s arguments.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The task's id.
    task_id: Uuid,
    /// The failed step.
    #[arg(long)]
    step: String,
    /// Its result, as JSON.
    #[arg(long)]
    result: String,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    output: Output,
}

/// `tasker cancel`'s arguments.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The task's id.
    task_id: Uuid,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    output: Output,
}

/// Retries a failed task from its failed steps.
pub async fn retry(args: RetryArgs, servers: &Servers) -> anyhow::Result<ExitCode> {
    let action = TaskAction::Retry { step: args.step };
    send(servers, args.task_id, action, args.wait, args.output).await
}

/// Completes a failed step by hand.
pub async fn resolve(args: ResolveArgs, servers: &Servers) -> anyhow::Result<ExitCode> {
    let result: serde_json::Value = serde_json::from_str(&args.result)
        .context("--result is not valid JSON; pass a value such as '{\"key\":1}'")?;
    let action = TaskAction::Resolve {
        step: args.step,
        result,
    };
    send(servers, args.task_id, action, args.wait, args.output).await
}

/// Cancels a running task.
pub async fn cancel(args: CancelArgs, servers: &Servers) -> anyhow::Result<ExitCode> {
    send(servers, args.task_id, TaskAction::Cancel, args.wait, args.output).await
}

/// Sends an operator's command to the coordinators of the task's namespace
/// and prints their answer; with `--wait`, then waits for the task to end.
async fn send(
    servers: &Servers,
    task_id: Uuid,
    action: TaskAction,
    wait: Wait,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&servers.redis_url, Duration::ZERO).await?;
    let Some(snapshot) = store.task(task_id).await? else {
        return Ok(no_such_task(task_id));
    };
    let client = Client::connect(&servers.amqp_url).await?;
    let command = TaskCommand {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        action,
    };
    let timeout = Duration::from_secs_f64(wait.timeout);
    let reply = client
        .command(&snapshot.namespace, &command)
        .await?
        .wait(timeout)
        .await
        .with_context(|| {
            format!(
                "no coordinator of namespace {} answered; is one running? (deploy/dev status)",
                snapshot.namespace
            )
        })?;
    let code = print_reply(&reply, output.json && !wait.wait)?;
    let accepted = matches!(&reply, Reply::Command(r) if r.accepted);
    if !wait.wait || !accepted {
        return Ok(code);
    }
    // Poll the store: the task's end is announced to its requesters, not
    // to whoever retried it.
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let snapshot = store
            .task(task_id)
            .await?
            .context("the task expired while waiting")?;
        if snapshot.status != TaskStatus::Running {
            return print_reply(&Reply::Finished(snapshot.report()), output.json);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "task {task_id} is still running after {timeout:?}; `tasker status {task_id}` shows where it stands"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
