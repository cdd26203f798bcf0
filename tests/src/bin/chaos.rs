//! `deploy/dev chaos`: the fault-injection suite, at full size.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tasker_e2e::chaos::{self, ChaosConfig, Fault};

#[derive(Parser)]
#[command(
    about = "Runs diamonds and 20-way fan-ins under load while killing, freezing and restarting every component"
)]
struct Args {
    /// The most tasks to submit; submitting stops once every fault has
    /// been injected and recovered from.
    #[arg(long, default_value_t = 100_000)]
    max_tasks: usize,
    /// Tasks kept in flight.
    #[arg(long, default_value_t = 250)]
    in_flight: usize,
    /// Seconds between faults, once the previous one has recovered.
    #[arg(long, default_value_t = 3.0)]
    fault_interval: f64,
    /// Seconds unfinished tasks may take once all are submitted.
    #[arg(long, default_value_t = 120.0)]
    finish_timeout: f64,
    /// Seconds a coordinator or a worker stays frozen (SIGSTOP); longer than
    /// the takeover bound, so that its work must be taken over meanwhile.
    #[arg(long, default_value_t = 40.0)]
    process_pause: f64,
    /// Seconds RabbitMQ or Redis stays frozen; on a cluster, how long a
    /// RabbitMQ node stays down.
    #[arg(long, default_value_t = 15.0)]
    server_pause: f64,
    /// Runs the cluster's faults, on the servers of `deploy/dev cluster`
    /// that TASKER_AMQP_URL and TASKER_REDIS_URL name (`deploy/dev cluster
    /// chaos` sets them): the RabbitMQ node that leads the step queue
    /// killed, a Redis master killed, a RabbitMQ node stopped, a
    /// coordinator killed, every result published twice.
    #[arg(long)]
    cluster: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dev_script = root.join("deploy/dev");
    if !args.cluster
        && let Some(why) = chaos::restart_blocker(&dev_script)
    {
        anyhow::bail!("{why}; start them with deploy/dev servers (deploy/dev chaos does)");
    }
    if args.cluster && tasker_runtime::broker::broker_urls(&tasker_e2e::amqp_url()).len() < 3 {
        anyhow::bail!(
            "--cluster needs TASKER_AMQP_URL and TASKER_REDIS_URL to name the nodes of deploy/dev cluster; run deploy/dev cluster chaos"
        );
    }
    let exe = std::env::current_exe()?;
    let node_binary = exe.with_file_name("chaos-node");
    let log_dir = root
        .join("target/chaos")
        .join(chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string());
    std::fs::create_dir_all(&log_dir)?;
    let report = chaos::run(ChaosConfig {
        max_tasks: args.max_tasks,
        in_flight: args.in_flight,
        fault_interval: Duration::from_secs_f64(args.fault_interval),
        finish_timeout: Duration::from_secs_f64(args.finish_timeout),
        faults: if args.cluster {
            Fault::CLUSTER.to_vec()
        } else {
            Fault::ALL.to_vec()
        },
        process_pause: Duration::from_secs_f64(args.process_pause),
        server_pause: Duration::from_secs_f64(args.server_pause),
        node_binary,
        python: tasker_e2e::process::python(),
        dev_script,
        log_dir: log_dir.clone(),
    })
    .await?;
    println!("\n{}", report.table());
    let json = serde_json::to_string(&report)?;
    println!("{json}");
    let latest = if args.cluster {
        "cluster-latest.json"
    } else {
        "latest.json"
    };
    std::fs::write(root.join("target/chaos").join(latest), &json)?;
    if report.passed() {
        println!(
            "chaos: PASSED: nothing lost, every join fired once, every frozen process's work taken over within {} s",
            chaos::TAKEOVER_BOUND.as_secs()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("chaos: FAILED; the processes' logs are in {}", log_dir.display());
        Ok(ExitCode::FAILURE)
    }
}
