//! How a worker runs: [`WorkerConfig`], set in code or from `TASKER_*`
//! environment variables.

use std::time::Duration;

use tasker_protocol::message::DEFAULT_MAX_MESSAGE_BYTES;
use tasker_protocol::topology;
use tasker_runtime::duration::HumanDuration;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The RabbitMQ URL (`amqp://` or `amqps://`).
    pub amqp_url: String,
    /// The service this worker is part of, such as `billing`. The workers of
    /// one service share its queue of each namespace's steps, so they must
    /// serve the same callables; another service, in any language, serves
    /// other callables of the same namespace. Required.
    pub service: String,
    /// How often the worker announces itself to the coordinators, which
    /// list it in `tasker workers`.
    pub announce_every: Duration,
    /// How often the worker and RabbitMQ tell each other they are alive,
    /// unless the URL says (`?heartbeat=`). It bounds how long a frozen
    /// worker holds its steps: RabbitMQ hands them to another worker after
    /// about two and a half heartbeats.
    pub heartbeat: Duration,
    /// How many steps run at once: the consumer's prefetch. Split over the
    /// queues when there are several ([`WorkerConfig::partitions`]): each
    /// gets `concurrency / partitions`, rounded up.
    pub concurrency: u16,
    /// How many queues the service's steps of each namespace are split over,
    /// so that one busy service can use several broker nodes: 1 (the
    /// default) is one queue; more need RabbitMQ's consistent-hash exchange
    /// plugin. Every worker of a service must use the same number.
    pub partitions: u32,
    /// On shutdown, how long in-flight steps may take to finish before
    /// they are handed back to the queue.
    pub shutdown_grace: Duration,
    /// The size limit of a message, the same on every coordinator and
    /// worker: larger step-ready messages are dead-lettered, and a result
    /// that would make a larger step result is reported as a permanent
    /// `result_too_large` failure instead.
    pub max_message_bytes: usize,
    /// A message delivered more often than this is dead-lettered instead of
    /// run again: it is probably what crashes the worker.
    pub max_redeliveries: u64,
    /// Shown in the broker's connection list and in logs.
    pub name: String,
    /// Where to serve `/healthz` and `/readyz`, if anywhere.
    pub health_addr: Option<std::net::SocketAddr>,
    /// How many recent results the worker remembers, to answer a
    /// redelivered step it already finished without running it again.
    pub remembered_results: usize,
}

impl WorkerConfig {
    /// The default configuration, with the broker URL from
    /// `TASKER_AMQP_URL`, the service from `TASKER_SERVICE`, the heartbeat
    /// from `TASKER_AMQP_HEARTBEAT` (`5s`, or a number of seconds), the
    /// concurrency from `TASKER_CONCURRENCY`, the message size limit from
    /// `TASKER_MAX_MESSAGE_BYTES`, the health address from
    /// `TASKER_HEALTH_ADDR` and the number of queues from
    /// `TASKER_PARTITIONS` when they are set, as the Python SDK reads them.
    ///
    /// # Panics
    ///
    /// If `TASKER_AMQP_HEARTBEAT` is set but is not a duration,
    /// `TASKER_CONCURRENCY` is set but is not a whole number above 0,
    /// `TASKER_MAX_MESSAGE_BYTES` is set but is not a number,
    /// `TASKER_PARTITIONS` is set but is not a whole number from 1 to
    /// [`topology::MAX_PARTITIONS`], or
    /// `TASKER_HEALTH_ADDR` is set but is not an address such as
    /// `0.0.0.0:8080`.
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`WorkerConfig::from_env`], reading each variable with `var`.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::default();
        Self {
            amqp_url: var("TASKER_AMQP_URL").unwrap_or(defaults.amqp_url),
            service: var("TASKER_SERVICE").unwrap_or(defaults.service),
            heartbeat: var("TASKER_AMQP_HEARTBEAT").map_or(defaults.heartbeat, |h| {
                h.parse::<HumanDuration>()
                    .unwrap_or_else(|e| panic!("TASKER_AMQP_HEARTBEAT: {e}"))
                    .0
            }),
            concurrency: var("TASKER_CONCURRENCY").map_or(defaults.concurrency, |c| {
                c.parse()
                    .ok()
                    .filter(|&n: &u16| n > 0)
                    .unwrap_or_else(|| panic!("TASKER_CONCURRENCY={c:?} is not a whole number above 0"))
            }),
            max_message_bytes: var("TASKER_MAX_MESSAGE_BYTES").map_or(defaults.max_message_bytes, |m| {
                m.parse().unwrap_or_else(|e| {
                    panic!("TASKER_MAX_MESSAGE_BYTES={m:?} is not a number of bytes: {e}")
                })
            }),
            partitions: var("TASKER_PARTITIONS").map_or(defaults.partitions, |p| {
                p.parse()
                    .ok()
                    .filter(|n| (1..=topology::MAX_PARTITIONS).contains(n))
                    .unwrap_or_else(|| {
                        panic!(
                            "TASKER_PARTITIONS={p:?} is not a whole number from 1 to {}",
                            topology::MAX_PARTITIONS
                        )
                    })
            }),
            health_addr: var("TASKER_HEALTH_ADDR").map(|a| {
                a.parse().unwrap_or_else(|e| {
                    panic!("TASKER_HEALTH_ADDR={a:?} is not an address like 0.0.0.0:8080: {e}")
                })
            }),
            ..defaults
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            amqp_url: tasker_runtime::defaults::AMQP_URL.to_owned(),
            service: String::new(),
            announce_every: Duration::from_secs(10),
            heartbeat: tasker_runtime::broker::DEFAULT_HEARTBEAT,
            concurrency: 32,
            partitions: 1,
            shutdown_grace: Duration::from_secs(30),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_redeliveries: 5,
            name: format!("tasker-worker-{}", std::process::id()),
            health_addr: None,
            remembered_results: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> WorkerConfig {
        WorkerConfig::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_environment_sets_what_it_names_and_leaves_the_rest_default() {
        let set = config(&[
            ("TASKER_AMQP_URL", "amqp://broker:5672/%2f"),
            ("TASKER_SERVICE", "billing"),
            ("TASKER_AMQP_HEARTBEAT", "20s"),
            ("TASKER_CONCURRENCY", "8"),
            ("TASKER_MAX_MESSAGE_BYTES", "2048"),
            ("TASKER_HEALTH_ADDR", "127.0.0.1:9400"),
            ("TASKER_PARTITIONS", "4"),
        ]);
        assert_eq!(set.amqp_url, "amqp://broker:5672/%2f");
        assert_eq!(set.service, "billing");
        assert_eq!(set.heartbeat, Duration::from_secs(20));
        assert_eq!(set.concurrency, 8);
        assert_eq!(set.max_message_bytes, 2048);
        assert_eq!(set.health_addr, Some("127.0.0.1:9400".parse().unwrap()));
        assert_eq!(set.partitions, 4);

        let unset = config(&[]);
        let defaults = WorkerConfig::default();
        assert_eq!(
            (
                unset.amqp_url,
                unset.service,
                unset.concurrency,
                unset.partitions,
                unset.health_addr
            ),
            (defaults.amqp_url, defaults.service, 32, 1, None)
        );
    }

    #[test]
    #[should_panic(expected = "TASKER_CONCURRENCY=\"0\" is not a whole number above 0")]
    fn a_concurrency_of_zero_is_refused() {
        let _ = config(&[("TASKER_CONCURRENCY", "0")]);
    }

    #[test]
    fn partitions_outside_one_to_the_maximum_are_refused() {
        for bad in ["0", "65", "x", "-1"] {
            let refused = std::panic::catch_unwind(|| config(&[("TASKER_PARTITIONS", bad)]))
                .expect_err(bad)
                .downcast::<String>()
                .map(|m| *m)
                .unwrap_or_default();
            assert_eq!(
                refused,
                format!("TASKER_PARTITIONS={bad:?} is not a whole number from 1 to 64"),
                "{bad}"
            );
        }
    }
}
