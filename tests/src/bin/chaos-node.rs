//! One process of the chaos suite or the benchmark: a coordinator, or a
//! worker whose handlers sleep a little and count every run in Redis, so
//! that the chaos suite can count handler executions beyond one per attempt
//! even across kill -9 (or, with `--noop`, do nothing at all); or a worker
//! with one team's example handlers, for the tracing test.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;
use tasker_worker::{ChildTask, StepContext, StepError, Worker, WorkerConfig, handler_fn};

/// jemalloc rather than the system allocator: every delivery's task is a
/// few kilobytes, too large for glibc's per-thread caches, and in the
/// benchmark jemalloc cut the CPU per step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Run a coordinator over a directory of templates.
    Coordinator {
        #[arg(long)]
        templates: PathBuf,
    },
    /// Run a worker for a namespace.
    Worker {
        #[arg(long)]
        namespace: String,
        /// No-op handlers: no sleep, no counting. For benchmarks.
        #[arg(long)]
        noop: bool,
    },
    /// Run a worker with the handlers of an example team, `payments`,
    /// `customer_success` or `microservices`, for `namespace`.
    TeamWorker {
        #[arg(long)]
        team: String,
        #[arg(long)]
        namespace: String,
        /// For `microservices`, one of its services (user, billing,
        /// preferences, notifications) rather than all of them.
        #[arg(long)]
        service: Option<String>,
        /// How long each handler takes, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Serve /healthz, /readyz and /metrics here.
        #[arg(long)]
        health_addr: Option<std::net::SocketAddr>,
    },
    /// Run a worker of `service` whose one handler, for `callable`, sleeps
    /// `sleep_ms` and returns `{"slept_ms": ...}`.
    Sleeper {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        callable: String,
        #[arg(long)]
        sleep_ms: u64,
    },
}

/// Counts one handler run in KEYS[1], field ARGV[1], once however often the
/// call is tried again: KEYS[2] remembers the run's own id, ARGV[2]. A call
/// that timed out while Redis was frozen may still have been applied, and
/// its retry must not count the run twice.
const COUNT_RUN: &str = r"
if redis.call('HSETNX', KEYS[2], ARGV[2], 1) == 1 then
  return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
return 0
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = tasker_worker::telemetry::init("chaos-node");
    let shutdown = tasker_worker::telemetry::shutdown_on_signal();
    let amqp_url = tasker_e2e::amqp_url();
    match Args::parse().role {
        Role::Coordinator { templates } => {
            let registry = tasker_coordinator::templates::load_dir(&templates)?;
            let config = tasker_coordinator::CoordinatorConfig {
                amqp_url,
                redis_url: tasker_e2e::redis_url(),
                retention: Duration::from_secs(3600),
                lease_margin: Duration::from_secs(5),
                claim_hold: Duration::from_secs(5),
                redis_durability: tasker_e2e::durability(),
                ..Default::default()
            };
            tasker_coordinator::run(config, registry, shutdown).await?;
        }
        Role::Worker {
            namespace,
            noop: true,
        } => {
            let handler = std::sync::Arc::new(handler_fn(|ctx: StepContext| async move {
                // For the tracing test: a retry to be seen in the trace.
                if ctx.attempt() == 1
                    && ctx.input_or("fail_first_attempt_of", String::new())? == ctx.step_name()
                {
                    return Err(StepError::retryable(
                        "ASKED_TO_FAIL",
                        "the request asked this attempt to fail",
                    ));
                }
                Ok::<_, StepError>(json!({ "step": ctx.step_name() }))
            }));
            let mut worker = Worker::new(WorkerConfig {
                amqp_url,
                service: tasker_e2e::bench::BENCH_SERVICE.to_owned(),
                concurrency: 256,
                name: format!("bench-worker-{}", std::process::id()),
                ..WorkerConfig::default()
            })
            .namespace(&namespace);
            for callable in tasker_e2e::chaos::CALLABLES {
                worker = worker.handler(*callable, Shared(handler.clone()));
            }
            worker.run(shutdown).await?;
        }
        Role::TeamWorker {
            team,
            namespace,
            service,
            latency_ms,
            health_addr,
        } => {
            let worker = Worker::new(WorkerConfig {
                amqp_url,
                service: service.clone().unwrap_or_else(|| team.clone()),
                name: format!("{team}-worker-{}", std::process::id()),
                health_addr,
                ..WorkerConfig::default()
            })
            .namespace(&namespace);
            let worker = match (team.as_str(), service.as_deref()) {
                ("payments", None) => {
                    tasker_example_payments::register(worker, &tasker_example_payments::Latency::none())
                }
                ("customer_success", None) => tasker_example_customer_success::register(
                    worker,
                    &tasker_example_customer_success::Latency::none(),
                ),
                ("microservices", one) => {
                    use tasker_example_microservices::{BillingService, Latency, Service, register_with};
                    let latency = Latency(latency_ms..latency_ms + 1);
                    match one {
                        None => register_with(worker, &latency, BillingService::Up),
                        Some(name) => Service::named(name)
                            .ok_or_else(|| anyhow::anyhow!("no microservices service {name:?}"))?
                            .register(worker, &latency, BillingService::Up),
                    }
                }
                (other, _) => anyhow::bail!(
                    "no team {other:?} (or it has no --service); pass payments, customer_success or microservices"
                ),
            };
            worker.run(shutdown).await?;
        }
        Role::Sleeper {
            namespace,
            service,
            callable,
            sleep_ms,
        } => {
            let worker = Worker::new(WorkerConfig {
                amqp_url,
                name: format!("{service}-sleeper-{}", std::process::id()),
                service,
                ..WorkerConfig::default()
            })
            .namespace(&namespace)
            .handler(
                callable,
                handler_fn(move |_ctx: StepContext| async move {
                    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                    Ok::<_, StepError>(json!({ "slept_ms": sleep_ms }))
                }),
            );
            worker.run(shutdown).await?;
        }
        Role::Worker {
            namespace,
            noop: false,
        } => {
            // Shared, so that a connection replaced after a failover serves
            // every later run.
            let shared = std::sync::Arc::new(std::sync::Mutex::new(tasker_e2e::redis().await?));
            let (key, ids) = (
                tasker_e2e::chaos::runs_key(&namespace),
                tasker_e2e::chaos::run_ids_key(&namespace),
            );
            let count = std::sync::Arc::new(redis::Script::new(COUNT_RUN));
            let handler = handler_fn(move |ctx: StepContext| {
                let (shared, key, ids, count) = (shared.clone(), key.clone(), ids.clone(), count.clone());
                async move {
                    let field = format!("{}|{}|{}", ctx.task_id(), ctx.step_name(), ctx.attempt());
                    let run = uuid::Uuid::new_v4().to_string();
                    // Counting is the test's business, not the engine's: it
                    // is tried again through a Redis restart or pause rather
                    // than spend the step's attempts, whose budget a pause
                    // of Redis can outlast. Only a Redis gone for a minute
                    // fails the attempt, retryably.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                    loop {
                        let mut conn = shared.lock().expect("the connection lock").clone();
                        // Bounded: a call a cluster connection loses in a
                        // failover is tried again rather than waited for.
                        let mut invocation = count.key(&key);
                        invocation.key(&ids).arg(&field).arg(&run);
                        let call = invocation.invoke_async::<i64>(&mut conn);
                        let counted = match tokio::time::timeout(Duration::from_secs(5), call).await {
                            Ok(counted) => counted.map_err(|e| e.to_string()),
                            Err(_) => {
                                // A new connection for the next try.
                                if let Ok(fresh) = tasker_e2e::redis().await {
                                    *shared.lock().expect("the connection lock") = fresh;
                                }
                                Err("no reply within 5 s".to_owned())
                            }
                        };
                        match counted {
                            Ok(_) => break,
                            Err(e) if tokio::time::Instant::now() >= deadline => {
                                return Err(StepError::retryable("CHAOS_COUNT", e));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "counting the run failed; trying again");
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(rand::random_range(5..20))).await;
                    Ok(json!({ "step": ctx.step_name(), "nonce": rand::random::<u64>() }))
                }
            });
            let handler = std::sync::Arc::new(handler);
            // Counts its run like the others, then waits for a child task.
            let delegate = {
                let handler = handler.clone();
                handler_fn(move |ctx: StepContext| {
                    let handler = handler.clone();
                    async move {
                        tasker_worker::StepHandler::call(handler.as_ref(), &ctx).await?;
                        let child =
                            ChildTask::new(ctx.namespace(), tasker_e2e::chaos::CHILD_TEMPLATE, json!({}));
                        ctx.complete_with_child(child).await
                    }
                })
            };
            let mut worker = Worker::new(WorkerConfig {
                amqp_url,
                service: tasker_e2e::chaos::CHAOS_SERVICE.to_owned(),
                concurrency: 64,
                shutdown_grace: Duration::from_secs(5),
                name: format!("chaos-worker-{}", std::process::id()),
                ..WorkerConfig::default()
            })
            .namespace(&namespace);
            // The callables of the chaos workers in other languages are
            // their services' alone.
            let ours = tasker_e2e::chaos::CALLABLES
                .iter()
                .filter(|c| !tasker_e2e::chaos::Language::serves(c));
            for callable in ours {
                worker = worker.handler(*callable, Shared(handler.clone()));
            }
            worker = worker.handler(tasker_e2e::chaos::CHILD_CALLABLE, delegate);
            worker.run(shutdown).await?;
        }
    }
    Ok(())
}

/// One handler under several callables.
struct Shared<H>(std::sync::Arc<H>);

#[async_trait::async_trait]
impl<H: tasker_worker::StepHandler> tasker_worker::StepHandler for Shared<H> {
    async fn call(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        self.0.call(ctx).await
    }
}
