//! `tasker submit`: a task request, and with `--wait` its outcome.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tasker_protocol::TaskRequest;
use tasker_runtime::Client;

use super::args::Output;
use super::output::{outln, print_reply};

/// `tasker submit`'s arguments.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The template's namespace.
    namespace: String,
    /// The template's name.
    name: String,
    /// The task's input, a JSON object.
    #[arg(long, default_value = "{}")]
    context: String,
    /// A template version; the highest loaded one when absent.
    #[arg(long)]
    version: Option<String>,
    /// Requests with the same key create one task.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Wait for the task to finish and print its report.
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    #[command(flatten)]
    output: Output,
}

/// Submits the task; with `--wait`, prints its report when it ends.
pub async fn run(args: SubmitArgs, amqp_url: &str) -> anyhow::Result<ExitCode> {
    let context: serde_json::Value = serde_json::from_str(&args.context)
        .context("--context is not valid JSON; pass an object such as '{\"key\":1}'")?;
    let mut request = TaskRequest::new(&args.namespace, &args.name, context);
    request.version = args.version;
    request.idempotency_key = args.idempotency_key;
    let client = Client::connect(amqp_url).await?;
    let submitted = client.submit(request).await?;
    let task_id = submitted.task_id;
    if !args.wait {
        if args.output.json {
            outln!("{}", serde_json::json!({ "task_id": task_id }));
        } else {
            outln!("submitted task {task_id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reply = submitted.wait(Duration::from_secs_f64(args.timeout)).await?;
    print_reply(&reply, args.output.json)
}
