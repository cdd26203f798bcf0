//! `tasker demo`: the seed's user-registration diamond, run once, with its
//! timeline and its trace.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tasker_runtime::{Client, Reply, telemetry};
use tracing::Instrument;

use super::output::{out, outln, print_reply, task_exit};
use super::report;

/// `tasker demo`'s arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The new user's email.
    #[arg(long, default_value = "jane.developer@example.com")]
    email: String,
    /// The new user's name.
    #[arg(long, default_value = "Jane Developer")]
    name: String,
    /// The plan: free, pro or enterprise.
    #[arg(long, default_value = "pro")]
    plan: String,
}

/// Submits one registration and prints how it went.
pub async fn run(args: DemoArgs, amqp_url: &str) -> anyhow::Result<ExitCode> {
    let DemoArgs { email, name, plan } = args;
    let context = serde_json::json!({
        "user_info": { "email": email, "name": name, "plan": plan, "source": "signup_form" }
    });
    outln!("Submitting microservices/user_registration for {name} <{email}> on the {plan} plan");
    let client = Client::connect(amqp_url).await?;
    // The task joins this span's trace: the request carries its context.
    let span = tracing::info_span!("register user", otel.kind = "producer");
    let submitted = client
        .create_task("microservices", "user_registration", context)
        .instrument(span.clone())
        .await?;
    outln!("task {}: waiting for it to finish…", submitted.task_id);
    match telemetry::trace_id(&span) {
        Some(trace) => outln!("trace {trace}: open it in Jaeger (http://localhost:16686/trace/{trace})\n"),
        None => outln!("(set OTEL_EXPORTER_OTLP_ENDPOINT to export this task's trace)\n"),
    }
    let reply = submitted.wait(Duration::from_secs(120)).await?;
    let Reply::Finished(report) = &reply else {
        return print_reply(&reply, false);
    };
    outln!("Timeline (each bar is one step; billing and preferences run side by side,");
    outln!("and send_welcome_sequence starts only when both have finished):\n");
    out!("{}", report::timeline(report));
    outln!();
    out!("{}", report::status_table(report));
    // Last, on one line, for a program to read: `tail -n 1`.
    outln!("\nFinal report (JSON):");
    outln!("{}", serde_json::to_string(report)?);
    client.close().await;
    Ok(task_exit(report.status))
}
