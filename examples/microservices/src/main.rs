//! The worker of the `microservices` namespace.

use std::time::Duration;

use clap::Parser;
use tasker_example_microservices::{BillingService, Latency, NAMESPACE, Service, register_with};
use tasker_worker::{Worker, WorkerConfig};

/// jemalloc rather than the system allocator: every delivery's task is a
/// few kilobytes, too large for glibc's per-thread caches, and in the
/// benchmark jemalloc cut the CPU per step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Runs the user-registration step handlers (namespace `microservices`)")]
struct Args {
    /// The service to run: user, billing, preferences or notifications; or
    /// accounts and status, which split user's two handlers; or all, every
    /// handler in one process (service `microservices`).
    #[arg(long, env = "TASKER_SERVICE", default_value = "all", value_parser = parse_service)]
    service: Chosen,
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
    /// Simulate an outage of the billing service: every billing attempt
    /// fails retryably with BILLING_SERVICE_UNAVAILABLE.
    #[arg(long, env = "TASKER_DEMO_BILLING_DOWN", num_args = 0..=1, default_value_t = false,
        default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    billing_down: bool,
    /// Seconds in-flight steps get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

/// The service `--service` chose; `None` for all of them.
#[derive(Clone, Copy)]
struct Chosen(Option<Service>);

fn parse_service(s: &str) -> Result<Chosen, String> {
    if s == "all" {
        return Ok(Chosen(None));
    }
    Service::named(s).map(|one| Chosen(Some(one))).ok_or_else(|| {
        let names: Vec<&str> = Service::EVERY.into_iter().map(Service::name).collect();
        format!("{s:?} is not a service; pass {} or all", names.join(", "))
    })
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
    let service = args.service.0.map_or(NAMESPACE, Service::name);
    // Its spans' service, as the trace shows it: worker-microservices-billing.
    let _telemetry = tasker_worker::telemetry::init(&match args.service.0 {
        Some(one) => format!("worker-microservices-{}", one.name()),
        None => "worker-microservices".to_owned(),
    });
    let config = WorkerConfig {
        amqp_url: args.amqp_url,
        service: service.to_owned(),
        concurrency: args.concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        name: format!("microservices-{service}-{}", std::process::id()),
        health_addr: args.health_addr,
        // The rest (TASKER_PARTITIONS, TASKER_MAX_MESSAGE_BYTES …) as every
        // Rust worker reads it.
        ..WorkerConfig::from_env()
    };
    let shutdown = tasker_worker::telemetry::shutdown_on_signal();
    let billing = if args.billing_down {
        BillingService::Down
    } else {
        BillingService::Up
    };
    let worker = Worker::new(config).namespace(NAMESPACE);
    let latency = Latency(args.latency_ms);
    let worker = match args.service.0 {
        Some(one) => one.register(worker, &latency, billing),
        None => register_with(worker, &latency, billing),
    };
    worker.run(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_flag_names_one_service_or_all() {
        let one = Args::try_parse_from(["worker", "--service", "billing"]).unwrap();
        assert_eq!(one.service.0, Some(Service::Billing));
        let all = Args::try_parse_from(["worker"]).unwrap();
        assert_eq!(all.service.0, None);
        let Err(wrong) = Args::try_parse_from(["worker", "--service", "bill"]) else {
            panic!("an unknown service parsed");
        };
        assert!(
            wrong
                .to_string()
                .contains("pass user, accounts, status, billing, preferences, notifications or all"),
            "{wrong}"
        );
        let half = Args::try_parse_from(["worker", "--service", "status"]).unwrap();
        assert_eq!(half.service.0, Some(Service::Status));
    }
}
