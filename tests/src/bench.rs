//! The benchmark: the broker's own floor for one step, measured in the same
//! run as Tasker's diamond, so the two can be compared.
//!
//! - **Baseline.** One step's worth of work with no engine logic: a ~300-byte
//!   persistent message published with a confirm to a quorum queue, a
//!   consumer that republishes it (with a confirm) to a second quorum queue
//!   and acks, and a second consumer that runs one small Lua script on Redis
//!   and acks. Both hops use Tasker's own exchanges and queues.
//! - **Tasker.** The seed's diamond with no-op handlers, on one coordinator
//!   and one worker process.
//!
//! The latencies at 1 in flight are taken in turns, a baseline round trip
//! then a diamond, so that a ratio of the two compares like with like.

use redis::AsyncCommands;
use std::collections::BTreeMap as HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use serde_json::json;
use tasker_protocol::TaskRequest;
use tasker_protocol::topology::{self, message_type};
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::publisher::{Outgoing, Publisher};
use tasker_worker::Client;
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::{amqp_url, redis_url, unique};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Samples.
    pub samples: usize,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Self {
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            samples: samples.len(),
        }
    }
}

/// Throughput with a number of requests kept in flight.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Kept in flight.
    pub in_flight: usize,
    /// Completed per second.
    pub per_second: f64,
    /// CPU microseconds per step of each process measured, over the window
    /// (for Tasker's diamond, until the window's last task had finished).
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub cpu_us_per_step: HashMap<String, f64>,
}

/// The baseline's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// One step's round trip at 1 in flight.
    pub latency: Latency,
    /// Steps per second at 256 in flight, and the CPU per step of RabbitMQ,
    /// Redis and this process (the publisher and both consumers), in the
    /// window taken right after Tasker's best one.
    pub throughput: Throughput,
    /// The same, in the window taken right after each of Tasker's.
    pub windows: Vec<Throughput>,
}

/// The baseline's figures taken in turns with the diamond's.
#[derive(Debug, Clone)]
pub struct Paired {
    /// The round trips, one before each diamond at 1 in flight.
    pub latency: Latency,
    /// A window of 256 in flight right after each of the diamond's windows.
    pub windows: Vec<Throughput>,
}

/// CPU time spent by a set of processes since the meter started.
pub struct CpuMeter {
    processes: Vec<(String, u32, Duration)>,
}

impl CpuMeter {
    /// Starts counting for `processes`, given as (label, pid).
    #[must_use]
    pub fn start(processes: &[(String, u32)]) -> Self {
        Self {
            processes: processes
                .iter()
                .map(|(label, pid)| (label.clone(), *pid, cpu_time(*pid).unwrap_or_default()))
                .collect(),
        }
    }

    /// CPU microseconds each process spent since the start, per step of `steps`.
    #[must_use]
    pub fn per_step(&self, steps: f64) -> HashMap<String, f64> {
        self.processes
            .iter()
            .map(|(label, pid, before)| {
                let spent = cpu_time(*pid).unwrap_or_default().saturating_sub(*before);
                (label.clone(), spent.as_secs_f64() * 1e6 / steps)
            })
            .collect()
    }
}

/// The RabbitMQ (`beam.smp`) and Redis (`redis-server`) processes on this
/// machine, labelled `rabbitmq` and `redis`, and this process, labelled
/// `own`: whose CPU a step costs besides Tasker's. Found by name in `/proc`.
/// On a cluster on this machine each node counts, the second and later of
/// a kind labelled `rabbitmq 2`, `redis 2` and so on.
#[must_use]
pub fn server_processes(own: &str) -> Vec<(String, u32)> {
    let mut found = vec![(own.to_owned(), std::process::id())];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for (label, comm) in [("rabbitmq", "beam.smp"), ("redis", "redis-server")] {
        let matching = pids.iter().copied().filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        });
        for (n, pid) in matching.enumerate() {
            let label = if n == 0 {
                label.to_owned()
            } else {
                format!("{label} {}", n + 1)
            };
            found.push((label, pid));
        }
    }
    found
}

/// Tasker's figures for the diamond.
#[derive(Debug, Clone, Serialize)]
pub struct Diamond {
    /// Request published → task finished received, at 1 in flight.
    pub latency: Latency,
    /// Tasks per second at each window tried.
    pub throughput: Vec<Throughput>,
}

/// The baseline's queues and consumers, kept running for the whole
/// benchmark, so that its round trips can be taken in turns with Tasker's
/// tasks: both then see the same machine, whose speed here changes from
/// one minute to the next.
pub struct Rig {
    namespace: String,
    publisher: Publisher,
    done: mpsc::Receiver<u64>,
    seq: Arc<AtomicU64>,
    consumers: Vec<tokio::task::JoinHandle<()>>,
    brokers: Vec<Broker>,
}

/// A consumer of `queue` with 256 unacked deliveries at most, on a channel
/// of its own.
async fn consume(broker: &Broker, queue: &str, tag: &str) -> anyhow::Result<lapin::Consumer> {
    let channel = broker.channel().await?;
    channel.basic_qos(256, BasicQosOptions::default()).await?;
    Ok(channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// The baseline's service and the callable its messages are routed by, as
/// a step's are.
const BASELINE_SERVICE: &str = "baseline";
const BASELINE_CALLABLE: &str = "hop";

/// The service of the benchmark's Tasker workers (`chaos-node worker --noop`).
pub const BENCH_SERVICE: &str = "bench";

impl Rig {
    /// Declares the baseline's queues (Tasker's own, of a fresh namespace)
    /// and starts its two consumers.
    ///
    /// # Errors
    ///
    /// If the servers cannot be reached.
    pub async fn start() -> anyhow::Result<Self> {
        let ns = unique("bench_base");
        let setup = Broker::connect(&amqp_url(), "bench-setup").await?;
        let channel = setup.channel().await?;
        setup.declare_common().await?;
        setup.declare_namespace(&ns).await?;
        let steps = setup
            .declare_service(&channel, &ns, BASELINE_SERVICE, &[BASELINE_CALLABLE])
            .await?;

        // First hop: take from the step queue, republish to the result queue.
        let hop = Broker::connect(&amqp_url(), "bench-hop").await?;
        let hop_publisher = hop.publisher().await?;
        let mut hop_consumer = consume(&hop, &steps, "hop").await?;
        let results_key = topology::step_result_routing_key(&ns);
        let hop_task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = hop_consumer.next().await {
                let (publisher, key) = (hop_publisher.clone(), results_key.clone());
                tokio::spawn(async move {
                    let copy = Outgoing {
                        exchange: topology::EVENTS_EXCHANGE.to_owned(),
                        routing_key: key,
                        payload: delivery.data.clone(),
                        properties: broker::properties(message_type::STEP_RESULT, None),
                        mandatory: true,
                    };
                    if publisher.publish(copy).await.is_ok() {
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                    }
                });
            }
        });

        // Second hop: one Lua call, then ack, then report completion.
        let (done_tx, done) = mpsc::channel::<u64>(4096);
        let sink = Broker::connect(&amqp_url(), "bench-sink").await?;
        let mut sink_consumer = consume(&sink, &topology::result_queue(&ns), "sink").await?;
        let redis = crate::redis().await?;
        let script = Arc::new(redis::Script::new(
            "return redis.call('HINCRBY', KEYS[1], 'n', 1)",
        ));
        let counter_key = format!("bench:{{{ns}}}");
        let sink_task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = sink_consumer.next().await {
                let (mut redis, script, key, done) = (
                    redis.clone(),
                    script.clone(),
                    counter_key.clone(),
                    done_tx.clone(),
                );
                tokio::spawn(async move {
                    let _: Result<i64, _> = script.key(&key).invoke_async(&mut redis).await;
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                    let seq =
                        u64::from_str_radix(std::str::from_utf8(&delivery.data[..16]).unwrap_or("0"), 16)
                            .unwrap_or(0);
                    let _ = done.send(seq).await;
                });
            }
        });
        Ok(Self {
            namespace: ns,
            publisher: setup.publisher().await?,
            done,
            seq: Arc::new(AtomicU64::new(0)),
            consumers: vec![hop_task, sink_task],
            brokers: vec![setup, hop, sink],
        })
    }

    /// The next message: ~300 bytes, like a small step-ready message, that
    /// starts with its sequence number.
    fn next_message(namespace: &str, seq: &AtomicU64) -> (u64, Outgoing) {
        let seq = seq.fetch_add(1, Ordering::Relaxed) + 1;
        let message = Outgoing {
            exchange: topology::STEPS_EXCHANGE.to_owned(),
            routing_key: topology::step_routing_key(namespace, BASELINE_CALLABLE),
            payload: format!("{seq:016x}{}", "x".repeat(284)).into_bytes(),
            properties: broker::properties(message_type::STEP_READY, None),
            mandatory: true,
        };
        (seq, message)
    }

    /// One step's round trip at 1 in flight: published with a confirm,
    /// until the second hop has run its script and acked.
    ///
    /// # Errors
    ///
    /// If the publish fails or the consumers have stopped.
    pub async fn round_trip(&mut self) -> anyhow::Result<Duration> {
        let (seq, message) = Self::next_message(&self.namespace, &self.seq);
        let t0 = Instant::now();
        self.publisher.publish(message).await?;
        loop {
            match self.done.recv().await {
                Some(s) if s == seq => return Ok(t0.elapsed()),
                Some(_) => {}
                None => anyhow::bail!("the baseline's consumers stopped"),
            }
        }
    }

    /// Steps per second with `window` in flight for `duration`, and the
    /// CPU per step of RabbitMQ, Redis and this process meanwhile.
    ///
    /// # Errors
    ///
    /// If the consumers have stopped.
    pub async fn throughput(&mut self, window: usize, duration: Duration) -> anyhow::Result<Throughput> {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(window));
        let feeder = {
            let (in_flight, publisher) = (in_flight.clone(), self.publisher.clone());
            let (namespace, seq) = (self.namespace.clone(), self.seq.clone());
            tokio::spawn(async move {
                while let Ok(permit) = in_flight.acquire().await {
                    permit.forget();
                    let (_, message) = Self::next_message(&namespace, &seq);
                    let publisher = publisher.clone();
                    tokio::spawn(async move { publisher.publish(message).await });
                }
            })
        };
        let meter = CpuMeter::start(&server_processes("bench (publisher and consumers)"));
        let start = Instant::now();
        let mut completed = 0u64;
        while let Some(left) = duration.checked_sub(start.elapsed()) {
            match tokio::time::timeout(left, self.done.recv()).await {
                Ok(Some(_)) => {
                    completed += 1;
                    in_flight.add_permits(1);
                }
                Ok(None) => anyhow::bail!("the baseline's consumers stopped"),
                Err(_) => break,
            }
        }
        let per_second = completed as f64 / start.elapsed().as_secs_f64();
        let cpu_us_per_step = meter.per_step(completed as f64);
        feeder.abort();
        Ok(Throughput {
            in_flight: window,
            per_second,
            cpu_us_per_step,
        })
    }

    /// Stops the consumers and closes the connections.
    pub async fn stop(self) {
        for task in self.consumers {
            task.abort();
        }
        for b in self.brokers {
            b.close().await;
        }
        crate::delete_namespaces(&[&self.namespace], &[BASELINE_SERVICE, BENCH_SERVICE]).await;
    }
}

/// Runs a coordinator and a worker process for a diamond namespace while
/// `f` measures, then stops them.
pub struct Processes {
    children: Vec<tokio::process::Child>,
    coordinators: usize,
    /// The benchmark's namespace.
    pub namespace: String,
}

impl Processes {
    /// Starts `coordinators` coordinators and `workers` no-op workers of
    /// the seed's diamond, in a namespace of their own.
    ///
    /// # Errors
    ///
    /// If a process cannot be started.
    pub async fn start(node: &Path, dir: &Path, coordinators: usize, workers: usize) -> anyhow::Result<Self> {
        let namespace = unique("bench");
        let templates = dir.join(&namespace);
        std::fs::create_dir_all(&templates)?;
        let yaml = include_str!("../../templates/microservices/user_registration.yaml").replace(
            "namespace_name: microservices",
            &format!("namespace_name: {namespace}"),
        );
        std::fs::write(templates.join("user_registration.yaml"), yaml)?;
        std::fs::write(templates.join("chain.yaml"), chain_template(&namespace, 10))?;
        std::fs::write(templates.join("fan_in.yaml"), fan_in_template(&namespace, 50))?;
        let mut children = Vec::new();
        let spawn = |args: Vec<String>| -> anyhow::Result<tokio::process::Child> {
            Ok(Command::new(node)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?)
        };
        for _ in 0..coordinators {
            children.push(spawn(vec![
                "coordinator".into(),
                "--templates".into(),
                templates.display().to_string(),
            ])?);
        }
        for _ in 0..workers {
            children.push(spawn(vec![
                "worker".into(),
                "--namespace".into(),
                namespace.clone(),
                "--noop".into(),
            ])?);
        }
        // Declared here, so that no request can go astray while they start.
        let broker = Broker::connect(&amqp_url(), "bench-setup").await?;
        broker.declare_common().await?;
        broker.declare_namespace(&namespace).await?;
        broker.close().await;
        Ok(Self {
            children,
            coordinators,
            namespace,
        })
    }

    /// Stops the processes and deletes the namespace's queues.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
        crate::delete_namespaces(&[&self.namespace], &[BASELINE_SERVICE, BENCH_SERVICE]).await;
    }

    /// The processes' ids, labelled `coordinator` and `worker` (then
    /// `coordinator 2`, `worker 2`, ..), coordinators first.
    #[must_use]
    pub fn labelled(&self) -> Vec<(String, u32)> {
        let (mut coordinators, mut workers) = (0, 0);
        self.children
            .iter()
            .enumerate()
            .filter_map(|(i, child)| {
                let (role, n) = if i < self.coordinators {
                    coordinators += 1;
                    ("coordinator", coordinators)
                } else {
                    workers += 1;
                    ("worker", workers)
                };
                let label = if n == 1 {
                    role.to_owned()
                } else {
                    format!("{role} {n}")
                };
                Some((label, child.id()?))
            })
            .collect()
    }
}

/// A linear chain of `length` steps, `chain`.
#[must_use]
pub fn chain_template(namespace: &str, length: usize) -> String {
    let mut yaml = format!("name: chain\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n");
    for i in 0..length {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("s{}", i - 1)
        };
        yaml += &format!("  - name: s{i}\n    handler: {{ callable: chaos }}\n    dependencies: [{deps}]\n");
    }
    yaml
}

/// `start`, then `width` parallel branches, then `join`: `fan_in`.
#[must_use]
pub fn fan_in_template(namespace: &str, width: usize) -> String {
    let mut yaml = format!(
        "name: fan_in\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n  - name: start\n    handler: {{ callable: chaos }}\n"
    );
    for i in 0..width {
        yaml += &format!("  - name: b{i}\n    handler: {{ callable: chaos }}\n    dependencies: [start]\n");
    }
    let branches: Vec<String> = (0..width).map(|i| format!("b{i}")).collect();
    yaml += &format!(
        "  - name: join\n    handler: {{ callable: chaos }}\n    dependencies: [{}]\n",
        branches.join(", ")
    );
    yaml
}

/// The shapes beside the diamond, at 1 in flight.
#[derive(Debug, Clone, Serialize)]
pub struct Shapes {
    /// The 10-step chain, end to end.
    pub chain_10: Latency,
    /// The 50-way fan-in: from the last branch's end, as its worker
    /// recorded it, to the join's start. It holds the trip of the branches'
    /// results through the broker and the coordinator, which all 50 make at
    /// once.
    pub join_50: Latency,
    /// The same join: from its release, when the coordinator recorded the
    /// last branch's result, to its start.
    pub join_50_from_release: Latency,
}

/// The 10-step chain's end-to-end latency and the 50-way fan-in's join
/// latencies, as the tasks' own timestamps (in ms) give them.
///
/// # Errors
///
/// If a task is rejected or times out.
pub async fn shapes(namespace: &str, samples: usize) -> anyhow::Result<Shapes> {
    let client = Client::connect(&amqp_url()).await?;
    let store = tasker_coordinator::Store::connect(&redis_url(), Duration::from_secs(3600)).await?;
    let run = |name: &'static str| {
        let client = &client;
        async move {
            let submitted = client
                .submit(TaskRequest::new(namespace, name, json!({})))
                .await?;
            crate::finished(submitted.wait(Duration::from_secs(60)).await?)
        }
    };
    for _ in 0..5 {
        run("chain").await?;
    }
    let mut chain = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        run("chain").await?;
        chain.push(t0.elapsed());
    }
    let (mut joins, mut released) = (Vec::new(), Vec::new());
    for _ in 0..(samples / 5).max(10) {
        let report = run("fan_in").await?;
        let Some(task) = store.task(report.task_id).await? else {
            anyhow::bail!("task {} is not in Redis after it finished", report.task_id);
        };
        let last_branch = task
            .steps
            .iter()
            .filter(|s| s.name.starts_with('b'))
            .filter_map(|s| s.finished_at)
            .max();
        let join = task.steps.iter().find(|s| s.name == "join");
        let (Some(end), Some(release), Some(start)) = (
            last_branch,
            join.and_then(|s| s.released_at),
            join.and_then(|s| s.started_at),
        ) else {
            anyhow::bail!("task {} lacks the times of its join", report.task_id);
        };
        joins.push((start - end).to_std().unwrap_or_default());
        released.push((start - release).to_std().unwrap_or_default());
    }
    client.close().await;
    Ok(Shapes {
        chain_10: Latency::of(chain),
        join_50: Latency::of(joins),
        join_50_from_release: Latency::of(released),
    })
}

/// The memory Redis uses for data, in bytes: on a cluster, that of its
/// masters.
async fn used_memory() -> anyhow::Result<f64> {
    Ok(masters_sum(&["used_memory:"]).await?[0])
}

/// For each of `fields` of Redis's `INFO` (such as `used_memory:`), its
/// sum over the masters of `TASKER_REDIS_URL`, each asked directly.
async fn masters_sum(fields: &[&str]) -> anyhow::Result<Vec<f64>> {
    let mut totals = vec![0.0; fields.len()];
    for url in crate::redis_url().split(',') {
        let mut node = redis::Client::open(url.trim())?
            .get_multiplexed_async_connection()
            .await?;
        let info: String = redis::cmd("INFO").query_async(&mut node).await?;
        let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if field("role:") != Some("master") {
            continue;
        }
        for (total, name) in totals.iter_mut().zip(fields) {
            *total += field(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        }
    }
    Ok(totals)
}

/// Redis memory per in-flight diamond: `used_memory` before and after
/// creating `count` diamonds that no worker serves, divided by `count`.
/// The tasks are deleted afterwards.
///
/// # Errors
///
/// If the servers cannot be reached.
pub async fn redis_bytes_per_diamond(namespace: &str, count: usize) -> anyhow::Result<f64> {
    let store = crate::store().await?;
    let (keys, mut redis) = (store.keys(), store.connection());
    let before = used_memory().await?;
    let client = Client::connect(&amqp_url()).await?;
    let context = json!({"user_info": {"email": "bench@example.com", "name": "B", "plan": "pro"}});
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(
            client
                .submit(TaskRequest::new(namespace, "user_registration", context.clone()))
                .await?
                .task_id,
        );
    }
    // Wait until the coordinator has created every task.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let checks = ids.iter().map(|id| {
            let mut redis = redis.clone();
            async move { redis.exists::<_, bool>(keys.task(*id)).await }
        });
        let exists: Vec<bool> = futures::future::try_join_all(checks).await?;
        if exists.iter().all(|e| *e) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = used_memory().await?;
    let deletes = ids.iter().map(|id| {
        let mut redis = redis.clone();
        async move { redis.del::<_, ()>(keys.task(*id)).await }
    });
    futures::future::try_join_all(deletes).await?;
    for shard in keys.shards() {
        let () = redis.del(keys.leases(shard, namespace)).await?;
    }
    client.close().await;
    Ok((after - before) / count as f64)
}

/// Measures the diamond: latency at 1 in flight, then throughput at each
/// window, with the CPU per step of the `metered` processes (label, pid)
/// in each window. With a `baseline`, each task at 1 in flight follows one
/// of its round trips, and their latency is returned too.
///
/// # Errors
///
/// If a task is rejected or times out.
pub async fn diamond(
    namespace: &str,
    samples: usize,
    windows: &[usize],
    duration: Duration,
    metered: &[(String, u32)],
    mut baseline: Option<&mut Rig>,
) -> anyhow::Result<(Diamond, Option<Paired>)> {
    let client = Client::connect(&amqp_url()).await?;
    let context = || json!({"user_info": {"email": "bench@example.com", "name": "B", "plan": "pro"}});
    // Warm up: the first tasks pay for connections and script loading.
    for _ in 0..20 {
        if let Some(rig) = baseline.as_deref_mut() {
            rig.round_trip().await?;
        }
        crate::finished(
            client
                .submit(TaskRequest::new(namespace, "user_registration", context()))
                .await?
                .wait(Duration::from_secs(30))
                .await?,
        )?;
    }
    let mut latencies = Vec::with_capacity(samples);
    let mut round_trips = Vec::with_capacity(samples);
    for _ in 0..samples {
        if let Some(rig) = baseline.as_deref_mut() {
            round_trips.push(rig.round_trip().await?);
        }
        let t0 = Instant::now();
        let submitted = client
            .submit(TaskRequest::new(namespace, "user_registration", context()))
            .await?;
        crate::finished(submitted.wait(Duration::from_secs(30)).await?)?;
        latencies.push(t0.elapsed());
    }
    let client = Arc::new(client);
    let mut throughput = Vec::new();
    let mut baseline_windows = Vec::new();
    for &window in windows {
        let permits = Arc::new(tokio::sync::Semaphore::new(window));
        let completed = Arc::new(AtomicU64::new(0));
        let meter = CpuMeter::start(metered);
        let start = Instant::now();
        while start.elapsed() < duration {
            let permit = permits.clone().acquire_owned().await?;
            let (client, completed) = (client.clone(), completed.clone());
            let request = TaskRequest::new(namespace, "user_registration", context());
            tokio::spawn(async move {
                if let Ok(s) = client.submit(request).await
                    && s.wait(Duration::from_secs(60)).await.is_ok()
                {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        let per_second = completed.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        // Let the window drain before the next one.
        let _ = permits
            .acquire_many(u32::try_from(window).unwrap_or(u32::MAX))
            .await;
        let steps = completed.load(Ordering::Relaxed) as f64 * DIAMOND_STEPS as f64;
        throughput.push(Throughput {
            in_flight: window,
            per_second,
            cpu_us_per_step: meter.per_step(steps),
        });
        // The baseline's window right after, so that each ratio compares
        // the same minute of a machine whose speed drifts.
        if let Some(rig) = baseline.as_deref_mut() {
            baseline_windows.push(rig.throughput(256, duration).await?);
        }
    }
    let diamond = Diamond {
        latency: Latency::of(latencies),
        throughput,
    };
    Ok((
        diamond,
        baseline.map(|_| Paired {
            latency: Latency::of(round_trips),
            windows: baseline_windows,
        }),
    ))
}

/// CPU time (user + system) of a process so far, from `/proc`.
#[must_use]
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks, 100 per second on every common build.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of a process, in bytes, from `/proc`.
#[must_use]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The broker's own floor.
    pub baseline: Baseline,
    /// Tasker, one coordinator and one worker.
    pub diamond: Diamond,
    /// Ratios against the baseline, named after the targets.
    pub ratios: HashMap<String, f64>,
    /// CPU microseconds per step, by process kind, during the throughput runs.
    pub cpu_us_per_step: HashMap<String, f64>,
    /// Resident memory of the coordinator after the run, in MiB.
    pub coordinator_rss_mib: f64,
    /// The 10-step chain and the 50-way fan-in, at 1 in flight.
    #[serde(flatten)]
    pub shapes: Shapes,
    /// Diamonds per second on 2 coordinators and 2 workers, at each window.
    pub diamond_2x2: Vec<Throughput>,
    /// Redis `used_memory` per in-flight diamond, in bytes.
    pub redis_bytes_per_diamond: f64,
    /// Per-step cost with 100 and with 10,000 diamonds in flight.
    pub scale: Vec<Scale>,
    /// Celery's canvas diamond on the same servers, as `tests/bench/celery`
    /// reports it; `None` when it was skipped.
    pub celery: Option<serde_json::Value>,
}

/// The cost of a step with many tasks in flight at once.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// Tasks submitted at once, in each batch.
    pub in_flight: usize,
    /// Tasks run in all.
    pub tasks: usize,
    /// CPU microseconds per step, by process kind.
    pub cpu_us_per_step: HashMap<String, f64>,
    /// The coordinator's largest resident memory seen while they ran, in MiB.
    pub coordinator_peak_rss_mib: f64,
    /// Wall time from the first submission to the last task finished.
    pub seconds: f64,
    /// What the steps cost each engine, from its own counters.
    pub engines: EngineCost,
}

/// What one step costs RabbitMQ and Redis, from the servers' own counters
/// read before and after a phase, divided by the steps it ran. Everything
/// the servers did meanwhile counts: the sweepers' polls and the bench
/// client's own traffic too.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineCost {
    /// Commands Redis processed (on a cluster, its masters), per step:
    /// those the scripts ran included, and on a cluster the replicas'
    /// acknowledgements of `WAIT`.
    pub redis_calls_per_step: f64,
    /// Bytes Redis received from clients, per step.
    pub redis_bytes_in_per_step: f64,
    /// Bytes Redis sent to clients, per step (not to its replicas).
    pub redis_bytes_out_per_step: f64,
    /// Bytes RabbitMQ received over AMQP connections, per step.
    pub rabbitmq_bytes_in_per_step: f64,
    /// Bytes RabbitMQ sent over AMQP connections, per step.
    pub rabbitmq_bytes_out_per_step: f64,
}

/// The engines' counters at one moment: Redis's commands and bytes in and
/// out, RabbitMQ's bytes in and out.
#[derive(Debug, Clone, Copy, Default)]
struct EngineCounters {
    redis: [f64; 3],
    rabbitmq: [f64; 2],
}

impl EngineCounters {
    async fn read() -> anyhow::Result<Self> {
        let sums = masters_sum(&[
            "total_commands_processed:",
            "total_net_input_bytes:",
            "total_net_output_bytes:",
        ])
        .await?;
        let redis = [sums[0], sums[1], sums[2]];
        // Every connection of the cluster, as the first node sees them.
        let out = crate::rabbitmqctl(&["-q", "list_connections", "recv_oct", "send_oct"])?;
        let mut rabbitmq = [0.0; 2];
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if let [recv, send] = fields[..] {
                rabbitmq[0] += recv;
                rabbitmq[1] += send;
            }
        }
        Ok(Self { redis, rabbitmq })
    }

    /// The cost per step of what happened between `self` and `later`.
    fn per_step(self, later: Self, steps: f64) -> EngineCost {
        let d = |a: f64, b: f64| (b - a).max(0.0) / steps;
        EngineCost {
            redis_calls_per_step: d(self.redis[0], later.redis[0]),
            redis_bytes_in_per_step: d(self.redis[1], later.redis[1]),
            redis_bytes_out_per_step: d(self.redis[2], later.redis[2]),
            rabbitmq_bytes_in_per_step: d(self.rabbitmq[0], later.rabbitmq[0]),
            rabbitmq_bytes_out_per_step: d(self.rabbitmq[1], later.rabbitmq[1]),
        }
    }
}

/// Submits `in_flight` diamonds at once and waits for all of them, `batches`
/// times, and divides the CPU time each of the `metered` processes (label,
/// pid; the first is the coordinator) spent by the steps they ran. Counting whole batches,
/// from the first submission until the last task ends, charges every step
/// exactly once, whatever was queued where.
///
/// # Errors
///
/// If a task is rejected or does not finish within two minutes.
pub async fn scale(
    namespace: &str,
    in_flight: usize,
    batches: usize,
    metered: &[(String, u32)],
) -> anyhow::Result<Scale> {
    let client = Arc::new(Client::connect(&amqp_url()).await?);
    let counters = EngineCounters::read().await?;
    let meter = CpuMeter::start(metered);
    let coordinator = metered[0].1;
    let start = Instant::now();
    let mut peak_rss = 0u64;
    for _ in 0..batches {
        let mut waiting = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let request = TaskRequest::new(
                namespace,
                "user_registration",
                json!({"user_info": {"email": "bench@example.com", "name": "B", "plan": "pro"}}),
            );
            let client = client.clone();
            waiting.spawn(async move { client.submit(request).await?.wait(Duration::from_secs(120)).await });
        }
        let mut sample = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                done = waiting.join_next() => match done {
                    Some(reply) => { crate::finished(reply??)?; }
                    None => break,
                },
                _ = sample.tick() => peak_rss = peak_rss.max(rss_bytes(coordinator).unwrap_or(0)),
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tasks = in_flight * batches;
    let steps = (tasks * DIAMOND_STEPS) as f64;
    let cpu_us_per_step = meter.per_step(steps);
    let engines = counters.per_step(EngineCounters::read().await?, steps);
    Ok(Scale {
        in_flight,
        tasks,
        cpu_us_per_step,
        coordinator_peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
        seconds,
        engines,
    })
}

/// Steps in the seed's `user_registration` diamond.
pub const DIAMOND_STEPS: usize = 5;

/// Runs Celery's canvas diamond on the same servers: `tests/bench/celery`'s
/// `setup.sh` makes its virtual environment, then `bench_celery.py` measures
/// and prints its figures as the last line of its output, in JSON.
///
/// # Errors
///
/// If the virtual environment cannot be made or the script fails.
pub fn celery(root: &Path, samples: usize, seconds: f64, full: bool) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let dir = root.join("tests/bench/celery");
    let setup = std::process::Command::new(dir.join("setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", dir.join("setup.sh").display()))?;
    anyhow::ensure!(
        setup.status.success(),
        "{} failed ({}); its output above says why. Run `deploy/dev bench --no-celery` to skip Celery",
        dir.join("setup.sh").display(),
        setup.status
    );
    let python = String::from_utf8_lossy(&setup.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    // kombu spells the default virtual host "//", not "/%2f".
    let amqp = amqp_url().replace("/%2f", "//").replace("/%2F", "//");
    let run = std::process::Command::new(&python)
        .arg(dir.join("bench_celery.py"))
        .args(["--amqp-url", &amqp, "--redis-url", &redis_url()])
        .args(["--samples", &samples.min(300).to_string()])
        // Celery runs 3 windows for each of up to 7 configurations: longer
        // windows than 4 s would take the bench past 10 minutes.
        .args(["--seconds", &seconds.min(4.0).to_string()])
        .args((!full).then_some("--quick"))
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    anyhow::ensure!(
        run.status.success(),
        "bench_celery.py failed ({}); its output above says why",
        run.status
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("bench_celery.py's last line is not JSON: {last}"))
}
