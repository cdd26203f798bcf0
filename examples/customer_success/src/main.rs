//! The worker of the `customer_success` namespace: one process of the support service.
//!
//! It serves every step of `process_refund`; `execute_refund_workflow` hands
//! the refund to the payments namespace as a child task.

use std::time::Duration;

use clap::Parser;
use tasker_example_customer_success::{Latency, NAMESPACE, register};
use tasker_worker::{Worker, WorkerConfig};

/// jemalloc rather than the system allocator: every delivery's task is a
/// few kilobytes, too large for glibc's per-thread caches, and in the
/// benchmark jemalloc cut the CPU per step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Runs the refund-ticket step handlers (namespace `customer_success`)")]
struct Args {
    /// RabbitMQ URL.
    #[arg(long, env = "TASKER_AMQP_URL", default_value = tasker_worker::defaults::AMQP_URL, hide_env_values = true)]
    amqp_url: String,
    /// Steps run at once (the consumer prefetch).
    #[arg(long, env = "TASKER_CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// Simulated service latency, in milliseconds, as MIN..MAX.
    #[arg(long, env = "TASKER_DEMO_LATENCY_MS", default_value = "40..120", value_parser = parse_range)]
    latency_ms: std::ops::Range<u64>,
    /// Serve /healthz and /readyz on this address, e.g. 0.0.0.0:8081.
    #[arg(long, env = "TASKER_HEALTH_ADDR")]
    health_addr: Option<std::net::SocketAddr>,
    /// Seconds in-flight steps get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?} is not MIN..MAX, for example 40..120"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|e| format!("{v:?} in {s:?}: {e}"))
    };
    Ok(parse(a)?..parse(b)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = tasker_worker::telemetry::init("worker-customer-success");
    let config = WorkerConfig {
        amqp_url: args.amqp_url,
        // The team's one service serves every step of its namespace.
        service: NAMESPACE.to_owned(),
        concurrency: args.concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        name: format!("customer-success-worker-{}", std::process::id()),
        health_addr: args.health_addr,
        // The rest (TASKER_PARTITIONS, TASKER_MAX_MESSAGE_BYTES …) as every
        // Rust worker reads it.
        ..WorkerConfig::from_env()
    };
    let shutdown = tasker_worker::telemetry::shutdown_on_signal();
    register(
        Worker::new(config).namespace(NAMESPACE),
        &Latency(args.latency_ms),
    )
    .run(shutdown)
    .await?;
    Ok(())
}
