//! `tasker coordinator`: every coordinator setting from a flag or its
//! environment variable, then the coordinator until a signal stops it.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use tasker_coordinator::store::Durability;
use tasker_coordinator::{CoordinatorConfig, templates};

use tasker_runtime::duration::HumanDuration;

use super::args::{Servers, TemplatesDir};

/// The settings of `tasker coordinator`, as [`CoordinatorConfig`] has them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Coordinator")]
pub struct CoordinatorArgs {
    #[command(flatten)]
    templates: TemplatesDir,
    /// How often the coordinator and RabbitMQ tell each other they are
    /// alive; RabbitMQ hands a frozen coordinator's deliveries to another
    /// after about two and a half (0 turns heartbeats off).
    #[arg(long, env = "TASKER_AMQP_HEARTBEAT", default_value_t = HumanDuration(defaults().heartbeat))]
    amqp_heartbeat: HumanDuration,
    /// Deliveries processed at once, per input queue.
    #[arg(long, env = "TASKER_PREFETCH", default_value_t = defaults().prefetch)]
    prefetch: u16,
    /// The size limit of a message, the same on every coordinator and
    /// worker; a step whose input would be larger fails with
    /// input_too_large.
    #[arg(long, env = "TASKER_MAX_MESSAGE_BYTES", default_value_t = defaults().max_message_bytes)]
    max_message_bytes: usize,
    /// How long a finished task stays in Redis (e.g. 7d, 12h).
    #[arg(long, env = "TASKER_RETENTION", default_value_t = HumanDuration(defaults().retention))]
    retention: HumanDuration,
    /// How often due retries and expired leases are looked for.
    #[arg(long, env = "TASKER_RETRY_POLL", default_value_t = HumanDuration(defaults().retry_poll))]
    retry_poll: HumanDuration,
    /// How long a claimed retry or expired lease stays with its claimant
    /// before another coordinator may take it over.
    #[arg(long, env = "TASKER_CLAIM_HOLD", default_value_t = HumanDuration(defaults().claim_hold))]
    claim_hold: HumanDuration,
    /// How long a step without timeout_seconds may run before it is timed
    /// out and retried.
    #[arg(long, env = "TASKER_DEFAULT_LEASE", default_value_t = HumanDuration(defaults().default_lease))]
    default_lease: HumanDuration,
    /// Added to every step's lease, for the trip through the broker.
    #[arg(long, env = "TASKER_LEASE_MARGIN", default_value_t = HumanDuration(defaults().lease_margin))]
    lease_margin: HumanDuration,
    /// A message delivered more often than this is dead-lettered. Below the
    /// queues' own delivery limit, 100, so the broker never drops it first.
    #[arg(long, env = "TASKER_MAX_REDELIVERIES", default_value_t = defaults().max_redeliveries,
        value_parser = clap::value_parser!(u64).range(..u64::from(tasker_protocol::topology::DELIVERY_LIMIT)))]
    max_redeliveries: u64,
    /// How long a request that reached the unrouted queue waits for its
    /// namespace's queue, when a coordinator has served that namespace.
    #[arg(long, env = "TASKER_UNROUTED_GRACE", default_value_t = HumanDuration(defaults().unrouted_grace))]
    unrouted_grace: HumanDuration,
    /// How many shards a new store gets: the first coordinator fixes the
    /// count [default: 1 on a single Redis, 16 on a Redis Cluster].
    #[arg(long, env = "TASKER_REDIS_SHARDS", value_parser = clap::value_parser!(u16).range(1..=i64::from(tasker_coordinator::store::keys::MAX_SHARDS)))]
    redis_shards: Option<u16>,
    /// How many replicas must hold a write before the message that caused
    /// it is acked: 'auto' (one, when every master has a replica), 'off',
    /// or a count.
    #[arg(long, env = "TASKER_REDIS_WAIT_REPLICAS", default_value = "auto")]
    redis_wait_replicas: Durability,
    /// How long a write waits for its replicas before the message is tried
    /// again.
    #[arg(long, env = "TASKER_REDIS_WAIT_TIMEOUT", default_value_t = HumanDuration(defaults().redis_wait_timeout))]
    redis_wait_timeout: HumanDuration,
    /// The name in the broker's connection list and in logs [default:
    /// tasker-coordinator-<pid>].
    #[arg(long, env = "TASKER_COORDINATOR_NAME")]
    name: Option<String>,
    /// Serve /healthz, /readyz and /metrics on this address, e.g.
    /// 0.0.0.0:8080.
    #[arg(long, env = "TASKER_HEALTH_ADDR")]
    health_addr: Option<SocketAddr>,
}

fn defaults() -> CoordinatorConfig {
    CoordinatorConfig::default()
}

impl CoordinatorArgs {
    /// The configuration these settings and `servers` make.
    fn config(self, servers: Servers) -> CoordinatorConfig {
        let defaults = defaults();
        CoordinatorConfig {
            amqp_url: servers.amqp_url,
            redis_url: servers.redis_url,
            redis_shards: self.redis_shards,
            redis_durability: self.redis_wait_replicas,
            redis_wait_timeout: self.redis_wait_timeout.0,
            heartbeat: self.amqp_heartbeat.0,
            prefetch: self.prefetch,
            max_message_bytes: self.max_message_bytes,
            retention: self.retention.0,
            retry_poll: self.retry_poll.0,
            claim_hold: self.claim_hold.0,
            default_lease: self.default_lease.0,
            lease_margin: self.lease_margin.0,
            name: self.name.unwrap_or(defaults.name),
            health_addr: self.health_addr,
            max_redeliveries: self.max_redeliveries,
            unrouted_grace: self.unrouted_grace.0,
        }
    }
}

/// Runs a coordinator until SIGINT or SIGTERM.
pub async fn run(args: CoordinatorArgs, servers: Servers) -> anyhow::Result<ExitCode> {
    let registry = templates::load_dir(&args.templates.dir)?;
    let config = args.config(servers);
    let shutdown = tasker_runtime::telemetry::shutdown_on_signal();
    tasker_coordinator::run(config, registry, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        servers: Servers,
        #[command(flatten)]
        args: CoordinatorArgs,
    }

    #[test]
    fn every_setting_has_a_flag_and_defaults_to_the_config() {
        let parsed = Command::try_parse_from(["tasker"]).unwrap();
        let config = parsed.args.config(parsed.servers);
        let defaults = CoordinatorConfig::default();
        assert_eq!(config.prefetch, defaults.prefetch);
        assert_eq!(config.retention, defaults.retention);
        assert_eq!(config.retry_poll, defaults.retry_poll);
        assert_eq!(config.unrouted_grace, defaults.unrouted_grace);

        let parsed = Command::try_parse_from([
            "tasker",
            "--amqp-heartbeat=2s",
            "--prefetch=8",
            "--max-message-bytes=2048",
            "--retention=12h",
            "--retry-poll=20ms",
            "--claim-hold=5s",
            "--default-lease=2m",
            "--lease-margin=1s",
            "--max-redeliveries=9",
            "--unrouted-grace=3s",
            "--name=c-1",
            "--health-addr=127.0.0.1:9000",
            "--amqp-url=amqp://a",
            "--redis-url=redis://r",
        ])
        .unwrap();
        let c = parsed.args.config(parsed.servers);
        assert_eq!(
            (c.prefetch, c.max_message_bytes, c.max_redeliveries),
            (8, 2048, 9)
        );
        assert_eq!(c.heartbeat.as_secs(), 2);
        assert_eq!(c.retention.as_secs(), 12 * 3600);
        assert_eq!(c.retry_poll.as_millis(), 20);
        assert_eq!(c.claim_hold.as_secs(), 5);
        assert_eq!(c.default_lease.as_secs(), 120);
        assert_eq!(c.lease_margin.as_secs(), 1);
        assert_eq!(c.unrouted_grace.as_secs(), 3);
        assert_eq!(c.name, "c-1");
        assert_eq!(c.health_addr, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(
            (c.amqp_url.as_str(), c.redis_url.as_str()),
            ("amqp://a", "redis://r")
        );
    }
}
