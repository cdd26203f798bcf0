//! Shared pieces of the end-to-end tests: a stack of in-process
//! coordinators and workers against the real RabbitMQ and Redis named by
//! `TASKER_AMQP_URL` and `TASKER_REDIS_URL`, a recorder of handler runs,
//! and a duplicator that publishes every step result twice.
//!
//! Every test uses its own namespaces, so it has its own queues: tests
//! running at once cannot see each other's messages.

pub mod bench;
pub mod chaos;
pub mod otlp;
pub mod process;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use lapin::options::BasicAckOptions;
use lapin::types::AMQPValue;
use serde_json::Value;
use tasker_coordinator::CoordinatorConfig;
use tasker_protocol::topology;
use tasker_protocol::{TaskFinished, TaskRequest, TaskTemplate, TemplateRegistry};
use tasker_runtime::broker::Broker;
use tasker_runtime::publisher::Outgoing;
use tasker_worker::{Client, Reply, StepContext, StepError, StepHandler, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The broker the tests use.
#[must_use]
pub fn amqp_url() -> String {
    std::env::var("TASKER_AMQP_URL").unwrap_or_else(|_| tasker_worker::defaults::AMQP_URL.to_owned())
}

/// The Redis the tests use.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("TASKER_REDIS_URL")
        .unwrap_or_else(|_| tasker_coordinator::coordinator::DEFAULT_REDIS_URL.to_owned())
}

/// The tests' store: a single Redis or a Redis Cluster, as
/// `TASKER_REDIS_URL` says. Its [`Store::keys`] name a task's keys.
///
/// # Errors
///
/// If Redis cannot be reached.
///
/// [`Store::keys`]: tasker_coordinator::Store::keys
pub async fn store() -> anyhow::Result<tasker_coordinator::Store> {
    Ok(tasker_coordinator::Store::connect(&redis_url(), Duration::from_secs(3600)).await?)
}

/// Runs `deploy/dev rabbitmqctl ARGS` against the first node that
/// `TASKER_AMQP_URL` names (on `deploy/dev cluster`, `tasker-<port>@localhost`).
///
/// # Errors
///
/// If deploy/dev cannot be run or the command fails.
pub fn rabbitmqctl(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut command = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dev"));
    command.arg("rabbitmqctl");
    let url = amqp_url();
    let urls = tasker_runtime::broker::broker_urls(&url);
    if urls.len() > 1
        && let Some(port) = url::Url::parse(urls[0]).ok().and_then(|u| u.port())
    {
        command.args(["-n", &format!("tasker-{port}@localhost")]);
    }
    let out = command.args(args).stderr(std::process::Stdio::piped()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// A connection to the tests' store, for commands of their own; on a
/// cluster it follows redirects, and takes no pipeline across slots.
///
/// # Errors
///
/// If Redis cannot be reached.
pub async fn redis() -> anyhow::Result<tasker_coordinator::store::Conn> {
    Ok(store().await?.connection())
}

/// A namespace no other test uses: `prefix_` and 8 random hex digits.
#[must_use]
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// Parses a template, panicking with its errors.
///
/// # Panics
///
/// If the YAML is not a valid template.
#[must_use]
pub fn template(yaml: &str) -> TaskTemplate {
    TaskTemplate::from_yaml("test template", yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// The seed's user-registration template, moved to `namespace`.
#[must_use]
pub fn registration_template(namespace: &str) -> TaskTemplate {
    let yaml = include_str!("../../templates/microservices/user_registration.yaml").replace(
        "namespace_name: microservices",
        &format!("namespace_name: {namespace}"),
    );
    template(&yaml)
}

/// A directory of its own holding the seed's user-registration template,
/// moved to `namespace`, its retries 20 times sooner: for a coordinator
/// started as a process (`--templates`).
///
/// # Panics
///
/// If the directory cannot be written.
#[must_use]
pub fn registration_templates_dir(namespace: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = include_str!("../../templates/microservices/user_registration.yaml")
        .replace(
            "namespace_name: microservices",
            &format!("namespace_name: {namespace}"),
        )
        .replace("initial_delay: 2", "initial_delay: 0.1");
    std::fs::write(dir.join("user_registration.yaml"), yaml).unwrap();
    dir
}

/// A template `name` in `namespace` with one step, `only`, run by the
/// callable `ok`.
#[must_use]
pub fn one_step_template(namespace: &str, name: &str) -> TaskTemplate {
    template(&format!(
        "name: {name}\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: {{ callable: ok }}\n"
    ))
}

/// Registers `handler(step)` under each callable of the registration
/// template, as a recorder's handler that stands in for the real ones.
#[must_use]
pub fn with_registration_handlers(mut worker: Worker, recorder: &Recorder, delay: Duration) -> Worker {
    for callable in chaos::CALLABLES
        .iter()
        .filter(|c| c.starts_with("Microservices::"))
    {
        worker = worker.handler(*callable, recorder.ok(delay));
    }
    worker
}

/// A file `deploy/dev` made under its state directory (`TASKER_STATE_DIR`,
/// by default `.dev`): the TLS certificates under `tls/`, the passwords of
/// the users it made under `secrets/`.
///
/// # Panics
///
/// If the file does not exist: the message says how to make it.
#[must_use]
pub fn dev_file(path: &str) -> std::path::PathBuf {
    let state = std::env::var_os("TASKER_STATE_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev"),
        Into::into,
    );
    let file = state.join(path);
    assert!(
        file.exists(),
        "{} does not exist: deploy/dev servers makes it",
        file.display()
    );
    file
}

/// The `tasker` command line, as `cargo test --workspace` builds it beside
/// this test.
///
/// # Panics
///
/// If it was not built.
#[must_use]
pub fn tasker_cli() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join("tasker"))
        .filter(|cli| cli.exists())
        .unwrap_or_else(|| {
            panic!(
                "no tasker binary beside {}: cargo build -p tasker-coordinator",
                exe.display()
            )
        })
}

/// The service of the tests' workers: each test's namespace has one.
pub const TEST_SERVICE: &str = "main";

/// The queue of `namespace`'s steps that the tests' workers consume.
#[must_use]
pub fn step_queue(namespace: &str) -> String {
    topology::service_queue(namespace, TEST_SERVICE)
}

/// A worker configuration for tests, of [`TEST_SERVICE`].
#[must_use]
pub fn worker_config(concurrency: u16) -> WorkerConfig {
    WorkerConfig {
        amqp_url: amqp_url(),
        service: TEST_SERVICE.to_owned(),
        concurrency,
        shutdown_grace: Duration::from_secs(5),
        name: format!("test-worker-{}", &Uuid::new_v4().simple().to_string()[..6]),
        ..WorkerConfig::default()
    }
}

/// A coordinator configuration for tests: fast retry polling, short retention.
#[must_use]
pub fn coordinator_config() -> CoordinatorConfig {
    CoordinatorConfig {
        amqp_url: amqp_url(),
        redis_url: redis_url(),
        retry_poll: Duration::from_millis(20),
        lease_margin: Duration::from_millis(500),
        claim_hold: Duration::from_secs(5),
        retention: Duration::from_secs(3600),
        unrouted_grace: Duration::from_secs(2),
        name: format!("test-coordinator-{}", &Uuid::new_v4().simple().to_string()[..6]),
        redis_durability: durability(),
        ..CoordinatorConfig::default()
    }
}

/// How many replicas a write waits for, from `TASKER_REDIS_WAIT_REPLICAS`
/// as `tasker coordinator` reads it (by default `auto`): the benchmark
/// measures a cluster with and without the wait.
#[must_use]
pub fn durability() -> tasker_coordinator::store::Durability {
    std::env::var("TASKER_REDIS_WAIT_REPLICAS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(tasker_coordinator::store::Durability::Auto)
}

/// Coordinators and workers running in this process, and a client.
pub struct Stack {
    /// Submits tasks and receives their outcome.
    pub client: Client,
    shutdown: CancellationToken,
    coordinators: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    registry: TemplateRegistry,
    /// The namespaces of the templates and the workers, and the services
    /// of the workers and the test's, whose queues go at the end.
    made_up: (BTreeSet<String>, BTreeSet<String>),
}

impl Stack {
    /// Starts `coordinators` coordinators that load `templates`, and the
    /// given workers. The namespaces' queues are declared before anything
    /// runs, so no request can go astray while the coordinators start.
    ///
    /// # Errors
    ///
    /// If the broker cannot be reached.
    pub async fn start(
        templates: Vec<TaskTemplate>,
        coordinators: usize,
        workers: Vec<Worker>,
    ) -> anyhow::Result<Self> {
        let mut registry = TemplateRegistry::new();
        for t in templates {
            registry.insert(t);
        }
        let broker = Broker::connect(&amqp_url(), "test-setup")
            .await
            .context("is RabbitMQ running? try deploy/dev servers")?;
        let channel = broker.channel().await?;
        broker.declare_common().await?;
        for ns in registry.namespaces() {
            broker.declare_namespace(ns).await?;
            if !workers.iter().any(|w| w.service() == TEST_SERVICE) {
                continue;
            }
            // The test service's queue, bound to every callable of the
            // namespace's templates before anything runs: no step waits for
            // a worker to declare it, and a worker without a handler for one
            // gets its steps (and fails them with handler_not_found). Tests
            // that name their own services bind nothing ahead.
            let callables: BTreeSet<&str> = registry
                .iter()
                .filter(|t| t.namespace == ns)
                .flat_map(|t| t.steps.iter().map(|s| s.callable.as_str()))
                .collect();
            let callables: Vec<&str> = callables.into_iter().collect();
            broker
                .declare_service(&channel, ns, TEST_SERVICE, &callables)
                .await?;
        }
        broker.close().await;
        let shutdown = CancellationToken::new();
        // A test may declare the test service's queue itself, with no worker.
        let services = workers
            .iter()
            .map(|w| w.service().to_owned())
            .chain([TEST_SERVICE.to_owned()])
            .collect();
        let namespaces = registry
            .namespaces()
            .into_iter()
            .map(str::to_owned)
            .chain(workers.iter().flat_map(|w| w.namespaces().iter().cloned()))
            .collect();
        let mut stack = Self {
            client: Client::connect(&amqp_url()).await?,
            shutdown: shutdown.clone(),
            coordinators: Vec::new(),
            workers: Vec::new(),
            registry,
            made_up: (namespaces, services),
        };
        for _ in 0..coordinators {
            stack.add_coordinator();
        }
        for worker in workers {
            let token = shutdown.clone();
            stack.workers.push(tokio::spawn(async move {
                worker.run(token).await.expect("worker failed");
            }));
        }
        Ok(stack)
    }

    /// Starts one more coordinator with the stack's templates.
    pub fn add_coordinator(&mut self) {
        let token = self.shutdown.child_token();
        let registry = self.registry.clone();
        let run = token.clone();
        let handle = tokio::spawn(async move {
            tasker_coordinator::run(coordinator_config(), registry, run)
                .await
                .expect("coordinator failed");
        });
        self.coordinators.push((token, handle));
    }

    /// Stops every coordinator, waiting for their in-flight deliveries.
    pub async fn stop_coordinators(&mut self) {
        for (token, handle) in self.coordinators.drain(..) {
            token.cancel();
            let _ = handle.await;
        }
    }

    /// Submits a task and waits for its report.
    ///
    /// # Errors
    ///
    /// If the request is rejected or no reply comes within a minute.
    pub async fn run(&self, namespace: &str, name: &str, context: Value) -> anyhow::Result<TaskFinished> {
        let submitted = self
            .client
            .submit(TaskRequest::new(namespace, name, context))
            .await?;
        finished(submitted.wait(Duration::from_secs(60)).await?)
    }

    /// Stops everything, waiting for in-flight work, then deletes the
    /// test's queues, so that test runs do not pile up queues on the broker.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for (_, handle) in self.coordinators {
            let _ = handle.await;
        }
        for handle in self.workers {
            let _ = handle.await;
        }
        self.client.close().await;
        let (namespaces, services) = &self.made_up;
        let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        let services: Vec<&str> = services.iter().map(String::as_str).collect();
        delete_namespaces(&namespaces, &services).await;
    }
}

/// Deletes the queues of made-up namespaces and of their `services`; a
/// failure only leaves them.
pub async fn delete_namespaces(namespaces: &[&str], services: &[&str]) {
    let Ok(broker) = Broker::connect(&amqp_url(), "test-cleanup").await else {
        return;
    };
    if let Ok(channel) = broker.channel().await {
        for ns in namespaces {
            let _ = broker.delete_namespace(&channel, ns, services).await;
        }
    }
    broker.close().await;
}

/// Reads how many messages wait in queues, for tests that must know the
/// consumers have taken everything published so far.
pub struct Queues {
    broker: Broker,
    channel: lapin::Channel,
}

impl Queues {
    /// Connects to the broker.
    ///
    /// # Errors
    ///
    /// If the broker cannot be reached.
    pub async fn connect() -> anyhow::Result<Self> {
        let broker = Broker::connect(&amqp_url(), "test-queues").await?;
        let channel = broker.channel().await?;
        Ok(Self { broker, channel })
    }

    /// How many messages are ready in `queue`: published and not handed to
    /// a consumer. Messages a consumer holds unacked are not counted.
    ///
    /// # Panics
    ///
    /// If the queue does not exist or the broker fails.
    pub async fn ready(&self, queue: &str) -> u32 {
        self.depth(queue).await.0
    }

    /// How many consumers `queue` has.
    ///
    /// # Panics
    ///
    /// As [`Queues::ready`].
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.depth(queue).await.1
    }

    /// How many messages are ready in `queue` once no consumer is left on
    /// it, for after its consumers were stopped: what they held unacked is
    /// counted too. A consumer's connection closes before the broker has
    /// taken back what it held, but the broker drops the consumer and
    /// requeues its messages in one step, so once no consumer is counted,
    /// those messages are.
    ///
    /// # Panics
    ///
    /// If a consumer is still there after 20 s, or as [`Queues::ready`].
    pub async fn ready_once_unconsumed(&self, queue: &str) -> u32 {
        eventually(&format!("the consumers of {queue} being gone"), || async {
            self.depth(queue).await.1 == 0
        })
        .await;
        self.ready(queue).await
    }

    /// The ready messages and the consumers of `queue`.
    async fn depth(&self, queue: &str) -> (u32, u32) {
        let declared = self
            .channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot read the depth of {queue}: {e}"));
        (declared.message_count(), declared.consumer_count())
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.broker.close().await;
    }
}

/// The report in a reply, or an error for a rejection.
///
/// # Errors
///
/// If the reply is a rejection.
pub fn finished(reply: Reply) -> anyhow::Result<TaskFinished> {
    match reply {
        Reply::Finished(report) => Ok(report),
        Reply::Rejected(r) => bail!("rejected ({:?}): {}", r.code, r.reason),
        Reply::Command(c) => bail!("a command's reply where a task's end was expected: {}", c.message),
    }
}

/// One run of a handler, as seen from inside it.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The task.
    pub task_id: Uuid,
    /// The step.
    pub step: String,
    /// The attempt the message carried.
    pub attempt: u32,
    /// When the handler started.
    pub started: Instant,
    /// When the handler returned.
    pub finished: Instant,
    /// The names of the ancestor results it was given.
    pub inputs: Vec<String>,
}

/// The start of a handler run, recorded before the handler does anything,
/// so that a run that never returns is seen too.
#[derive(Debug, Clone)]
pub struct Start {
    /// The task.
    pub task_id: Uuid,
    /// The step.
    pub step: String,
    /// The attempt the message carried.
    pub attempt: u32,
    /// When the handler started.
    pub at: Instant,
}

/// Records every handler run of the handlers it wraps: when each starts,
/// and when each returns.
#[derive(Clone, Default)]
pub struct Recorder {
    starts: Arc<Mutex<Vec<Start>>>,
    runs: Arc<Mutex<Vec<Execution>>>,
}

impl Recorder {
    /// A handler that records its runs, sleeps `delay`, then calls `f`.
    pub fn handler<F>(&self, delay: Duration, f: F) -> impl StepHandler
    where
        F: Fn(&StepContext) -> Result<Value, StepError> + Send + Sync + 'static,
    {
        let starts = self.starts.clone();
        let runs = self.runs.clone();
        let f = Arc::new(f);
        tasker_worker::handler_fn(move |ctx: StepContext| {
            let starts = starts.clone();
            let runs = runs.clone();
            let f = f.clone();
            async move {
                let started = Instant::now();
                starts.lock().unwrap().push(Start {
                    task_id: ctx.task_id(),
                    step: ctx.step_name().to_owned(),
                    attempt: ctx.attempt(),
                    at: started,
                });
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let outcome = f(&ctx);
                runs.lock().unwrap().push(Execution {
                    task_id: ctx.task_id(),
                    step: ctx.step_name().to_owned(),
                    attempt: ctx.attempt(),
                    started,
                    finished: Instant::now(),
                    inputs: ctx.message().dependency_results.keys().cloned().collect(),
                });
                outcome
            }
        })
    }

    /// A handler that records its runs and returns `{"step": name}`.
    pub fn ok(&self, delay: Duration) -> impl StepHandler {
        self.handler(delay, |ctx| Ok(serde_json::json!({ "step": ctx.step_name() })))
    }

    /// The starts of `step` in `task_id`, including those of runs that
    /// have not returned (or never will).
    #[must_use]
    pub fn starts_of(&self, task_id: Uuid, step: &str) -> Vec<Start> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.task_id == task_id && s.step == step)
            .cloned()
            .collect()
    }

    /// Every run that returned so far.
    #[must_use]
    pub fn runs(&self) -> Vec<Execution> {
        self.runs.lock().unwrap().clone()
    }

    /// The runs of `step` in `task_id` that returned.
    #[must_use]
    pub fn runs_of(&self, task_id: Uuid, step: &str) -> Vec<Execution> {
        self.runs()
            .into_iter()
            .filter(|r| r.task_id == task_id && r.step == step)
            .collect()
    }
}

/// The header the duplicator puts on the copies it publishes.
const DUPLICATE_HEADER: &str = "x-test-duplicate";

/// Publishes every step result of `namespace` a second time, on purpose,
/// until dropped. Returns how many it copied so far through the counter.
pub struct Duplicator {
    task: tokio::task::JoinHandle<()>,
    /// How many results were published twice.
    pub copies: Arc<std::sync::atomic::AtomicUsize>,
}

impl Duplicator {
    /// Starts copying the results of `namespace`.
    ///
    /// # Errors
    ///
    /// If the broker cannot be reached.
    pub async fn start(namespace: &str) -> anyhow::Result<Self> {
        let broker = Broker::connect(&amqp_url(), "test-duplicator").await?;
        let channel = broker.channel().await?;
        let publisher = broker.publisher().await?;
        let results = topology::step_result_routing_key(namespace);
        let (_, mut consumer) = broker
            .private_queue(&channel, Some((topology::EVENTS_EXCHANGE, &results)), false)
            .await?;
        let copies = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = copies.clone();
        let task = tokio::spawn(async move {
            let _keep = broker;
            while let Some(Ok(delivery)) = consumer.next().await {
                let is_copy = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .is_some_and(|h| h.inner().contains_key(DUPLICATE_HEADER));
                if !is_copy {
                    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                    headers.insert(DUPLICATE_HEADER.into(), AMQPValue::Boolean(true));
                    let copy = Outgoing {
                        exchange: topology::EVENTS_EXCHANGE.to_owned(),
                        routing_key: delivery.routing_key.to_string(),
                        payload: delivery.data.clone(),
                        properties: delivery.properties.clone().with_headers(headers),
                        mandatory: true,
                    };
                    if publisher.publish(copy).await.is_ok() {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
        });
        Ok(Self { task, copies })
    }
}

impl Drop for Duplicator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `n` tasks of `namespace/name` at once, each with `context(i)`, and
/// returns their reports.
///
/// # Errors
///
/// If any task is rejected or does not finish within `timeout`.
pub async fn run_many(
    client: &Client,
    namespace: &str,
    name: &str,
    n: usize,
    context: impl Fn(usize) -> Value,
    timeout: Duration,
) -> anyhow::Result<Vec<TaskFinished>> {
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        pending.push(
            client
                .submit(TaskRequest::new(namespace, name, context(i)))
                .await?,
        );
    }
    let waits = pending
        .into_iter()
        .map(|s| async move { finished(s.wait(timeout).await?) });
    futures::future::join_all(waits).await.into_iter().collect()
}

/// What is left in `namespace`'s lease set and retry schedule: nothing,
/// once every task has finished. Waits up to two seconds for them to
/// empty, since the sweeper takes a dispatched retry off the schedule just
/// after publishing it.
///
/// # Panics
///
/// If Redis cannot be reached.
pub async fn leftover_bookkeeping(namespace: &str) -> (Vec<String>, Vec<String>) {
    use redis::AsyncCommands;
    let store = store().await.expect("Redis is up");
    let (keys, mut redis) = (store.keys(), store.connection());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (mut leases, mut retries) = (Vec::new(), Vec::new());
        for shard in keys.shards() {
            let found: Vec<String> = redis
                .zrange(keys.leases(shard, namespace), 0, -1)
                .await
                .expect("ZRANGE");
            leases.extend(found);
            let found: Vec<String> = redis
                .zrange(keys.schedule(shard, namespace), 0, -1)
                .await
                .expect("ZRANGE");
            retries.extend(found);
        }
        if (leases.is_empty() && retries.is_empty()) || std::time::Instant::now() > deadline {
            return (leases, retries);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the crate's logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
}

/// Waits until `ready` gives true, asking every 50 ms for up to 20 s.
///
/// # Panics
///
/// If it never does; the message says what was `awaited`.
pub async fn eventually<F, Fut>(awaited: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{awaited} did not happen within 20 s");
}
