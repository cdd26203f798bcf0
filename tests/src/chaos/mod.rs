//! The chaos suite: diamonds and 20-way fan-ins under load, with two
//! coordinators and two workers as separate processes, while workers and
//! coordinators are killed with SIGKILL or frozen with SIGSTOP, RabbitMQ and
//! Redis are restarted or frozen, and every step result is published twice.
//! Then it counts what was lost, and how the tasks around each fault fared.
//!
//! - [`fault`]: the faults and how each is injected;
//! - [`report`]: what a run found;
//! - `nodes`: the coordinator and worker processes.

pub mod cluster;
pub mod fault;
mod nodes;
pub mod report;

pub use fault::{Fault, TAKEOVER_BOUND, restart_blocker};
pub use report::{ChaosReport, FaultRecovery, Latency};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::AsyncCommands;
use serde_json::json;
use tasker_coordinator::store::Conn;
use tasker_protocol::{TaskRequest, TaskTemplate, topology};
use tasker_worker::Client;
use tokio::sync::Mutex;
use uuid::Uuid;

use self::nodes::{Connections, Node, Nodes, Role};
use self::report::{Injected, TaskTimes};
use crate::{Duplicator, amqp_url, template, unique};

/// Every callable the chaos templates use. The Rust chaos workers serve them
/// all but those of the workers in other languages ([`Language`]); the
/// benchmark's worker serves them all.
pub const CALLABLES: &[&str] = &[
    "Microservices::StepHandlers::CreateUserAccountHandler",
    "Microservices::StepHandlers::SetupBillingProfileHandler",
    "Microservices::StepHandlers::InitializePreferencesHandler",
    "Microservices::StepHandlers::SendWelcomeSequenceHandler",
    "Microservices::StepHandlers::UpdateUserStatusHandler",
    "chaos",
];

/// The service of the Rust chaos workers.
pub const CHAOS_SERVICE: &str = "chaos";

/// The languages of the chaos workers beside the Rust ones. One worker of
/// each runs, the only worker of its own service, serving one of the
/// diamond's callables, so that the suite's diamonds run in four languages
/// and its faults strike a namespace split into four services. These
/// workers do not count their runs, so the report's handler executions are
/// the Rust services' alone; a join is checked in the task's hash either
/// way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `tests/python/chaos_worker.py`.
    Python,
    /// `tests/typescript/chaos_worker.mjs`, on the TypeScript SDK's build.
    Typescript,
    /// `tests/ruby/chaos_worker.rb`.
    Ruby,
}

impl Language {
    /// Every language of a chaos worker besides Rust.
    pub const ALL: [Self; 3] = [Self::Python, Self::Typescript, Self::Ruby];

    /// The service of its worker.
    #[must_use]
    pub fn service(self) -> &'static str {
        match self {
            Self::Python => "chaos_py",
            Self::Typescript => "chaos_ts",
            Self::Ruby => "chaos_rb",
        }
    }

    /// The callables its worker serves, and the Rust ones do not: the
    /// diamond's join (Python) and both its parallel branches (TypeScript
    /// and Ruby), whose parent the Rust service runs.
    #[must_use]
    pub fn callables(self) -> &'static [&'static str] {
        match self {
            Self::Python => &["Microservices::StepHandlers::SendWelcomeSequenceHandler"],
            Self::Typescript => &["Microservices::StepHandlers::InitializePreferencesHandler"],
            Self::Ruby => &["Microservices::StepHandlers::SetupBillingProfileHandler"],
        }
    }

    /// Whether a worker in another language than Rust serves `callable`.
    #[must_use]
    pub fn serves(callable: &str) -> bool {
        Self::ALL.iter().any(|l| l.callables().contains(&callable))
    }
}

/// The callable of the chaos template's step that hands its work to a
/// child task, `errand`, and completes with the child's result.
pub const CHILD_CALLABLE: &str = "chaos_child";

/// The template of the child tasks that `CHILD_CALLABLE` starts.
pub const CHILD_TEMPLATE: &str = "errand";

/// How a chaos run goes.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The most tasks to submit. Submitting goes on until every fault has
    /// been injected and recovered from, or until this many.
    pub max_tasks: usize,
    /// Tasks kept in flight.
    pub in_flight: usize,
    /// Pause between faults, once the previous one has recovered.
    pub fault_interval: Duration,
    /// How long unfinished tasks may take once everything is submitted.
    pub finish_timeout: Duration,
    /// The faults to inject, in order.
    pub faults: Vec<Fault>,
    /// How long a coordinator or a worker stays frozen: longer than
    /// [`TAKEOVER_BOUND`], so that its work must be taken over.
    pub process_pause: Duration,
    /// How long RabbitMQ or Redis stays frozen.
    pub server_pause: Duration,
    /// The `chaos-node` binary.
    pub node_binary: PathBuf,
    /// The Python the Python chaos worker runs with, which has the SDK
    /// ([`crate::process::python`]).
    pub python: PathBuf,
    /// `deploy/dev`, to restart the servers.
    pub dev_script: PathBuf,
    /// Where the processes' logs go.
    pub log_dir: PathBuf,
}

/// How long the run waits after a fault for tasks to finish again.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

/// How many tasks must finish after a fault for it to count as recovered.
pub const RECOVERY_TASKS: usize = 10;

/// The diamond and the 20-way fan-in, in `namespace`.
fn templates(namespace: &str) -> Vec<(String, String)> {
    let diamond = include_str!("../../../templates/microservices/user_registration.yaml").replace(
        "namespace_name: microservices",
        &format!("namespace_name: {namespace}"),
    );
    let mut fan_in = format!(
        "name: fan_in_20\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n  - name: start\n    handler: {{ callable: chaos }}\n"
    );
    for i in 0..20 {
        let _ = write!(
            fan_in,
            "  - name: branch_{i}\n    handler: {{ callable: chaos }}\n    dependencies: [start]\n"
        );
    }
    let branches: Vec<String> = (0..20).map(|i| format!("branch_{i}")).collect();
    let _ = write!(
        fan_in,
        "  - name: join\n    handler: {{ callable: chaos }}\n    dependencies: [{}]\n",
        branches.join(", ")
    );
    // A diamond whose left branch waits for a child task.
    let hand_off = format!(
        "name: hand_off\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: open\n    handler: {{ callable: chaos }}\n\
         \x20 - name: delegate\n    handler: {{ callable: {CHILD_CALLABLE} }}\n    dependencies: [open]\n\
         \x20 - name: note\n    handler: {{ callable: chaos }}\n    dependencies: [open]\n\
         \x20 - name: close\n    handler: {{ callable: chaos }}\n    dependencies: [delegate, note]\n"
    );
    let errand = format!(
        "name: {CHILD_TEMPLATE}\nnamespace_name: {namespace}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: first\n    handler: {{ callable: chaos }}\n\
         \x20 - name: second\n    handler: {{ callable: chaos }}\n    dependencies: [first]\n"
    );
    vec![
        ("user_registration.yaml".into(), diamond),
        ("fan_in_20.yaml".into(), fan_in),
        ("hand_off.yaml".into(), hand_off),
        (format!("{CHILD_TEMPLATE}.yaml"), errand),
    ]
}

/// The join step of each chaos template, and its parents.
fn join_of(template: &TaskTemplate) -> usize {
    let name = match template.name.as_str() {
        "fan_in_20" => "join",
        "hand_off" => "close",
        _ => "send_welcome_sequence",
    };
    template
        .step_index(name)
        .expect("chaos templates have their join")
}

/// What the poller knows about the tasks.
#[derive(Default)]
struct Progress {
    /// Task id → template name, for every submitted task.
    submitted: HashMap<Uuid, String>,
    /// Finished tasks.
    finished: HashMap<Uuid, Finished>,
}

/// A task as the poller first saw it finished.
struct Finished {
    status: String,
    /// Its step results at the time.
    results: HashMap<String, String>,
    /// When it was accepted and when it finished.
    times: Option<TaskTimes>,
}

impl Finished {
    fn from_hash(status: &str, hash: &HashMap<String, String>) -> Self {
        let ms = |field: &str| hash.get(field).and_then(|v| v.parse::<i64>().ok());
        Self {
            status: status.to_owned(),
            results: results(hash),
            times: ms("created")
                .zip(ms("finished"))
                .map(|(created, finished)| TaskTimes { created, finished }),
        }
    }
}

/// The Redis hash where the chaos workers of `namespace` remember the id of
/// every handler run they counted, so that a count tried again counts once.
#[must_use]
pub fn run_ids_key(namespace: &str) -> String {
    format!("chaos:{{{namespace}}}:run-ids")
}

/// The hash that counts the handler runs of `namespace`, by
/// `<task>|<step>|<attempt>`; in the slot of [`run_ids_key`], since one
/// script updates both.
#[must_use]
pub fn runs_key(namespace: &str) -> String {
    format!("chaos:{{{namespace}}}:runs")
}

/// Now, as the coordinators stamp tasks: unix ms.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Handler runs beyond one per (task, step, attempt) so far, from the
/// counts the chaos workers keep in Redis.
async fn extra_runs(redis: &mut Conn, namespace: &str) -> anyhow::Result<u64> {
    let counts: Vec<u64> = redis.hvals(runs_key(namespace)).await?;
    Ok(counts.iter().map(|n| n.saturating_sub(1)).sum())
}

/// After the SIGCONT of a paused coordinator or worker: whether it runs on,
/// having either kept its connections or, if it lost one while it was
/// frozen (the broker closes it after missed heartbeats), connected again.
async fn resumed(node: &mut Node, before: Connections) -> bool {
    let resumed_at = Instant::now();
    while resumed_at.elapsed() < Duration::from_secs(30) {
        if !node.is_running() {
            return false;
        }
        let now = node.connections();
        let kept = now.lost == before.lost && resumed_at.elapsed() >= Duration::from_secs(5);
        let reconnected = now.lost > before.lost && now.made > before.made;
        if kept || reconnected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Runs the suite and reports.
///
/// # Errors
///
/// If the servers or the processes cannot be started at all.
pub async fn run(config: ChaosConfig) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    let namespace = unique("chaos");
    let template_dir = config.log_dir.join("templates");
    std::fs::create_dir_all(&template_dir)?;
    let mut registry = HashMap::new();
    for (file, yaml) in templates(&namespace) {
        std::fs::write(template_dir.join(&file), &yaml)?;
        let t = template(&yaml);
        registry.insert(t.name.clone(), t);
    }
    let registry = Arc::new(registry);
    eprintln!(
        "chaos: namespace {namespace}, logs in {}",
        config.log_dir.display()
    );

    let mut nodes = Nodes {
        binary: config.node_binary.clone(),
        templates: template_dir,
        namespace: namespace.clone(),
        log_dir: config.log_dir.clone(),
        python: config.python.clone(),
        coordinators: Vec::new(),
        workers: Vec::new(),
        others: Vec::new(),
        started: 0,
    };
    nodes.start(2, 2)?;
    let progress = Arc::new(Mutex::new(Progress::default()));
    let store = crate::store().await?;
    let keys = store.keys();
    let redis_before = store.connection();

    // The poller: which tasks have finished, and their results at that time.
    let poller = {
        let (progress, mut redis) = (progress.clone(), redis_before.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let open: Vec<Uuid> = {
                    let p = progress.lock().await;
                    p.submitted
                        .keys()
                        .filter(|id| !p.finished.contains_key(id))
                        .copied()
                        .collect()
                };
                for chunk in open.chunks(500) {
                    // One read each, all at once: a cluster takes no
                    // pipeline across slots.
                    let reads = chunk.iter().map(|id| {
                        let mut redis = redis.clone();
                        async move { redis.hgetall::<_, HashMap<String, String>>(keys.task(*id)).await }
                    });
                    // Bounded: a cluster connection can lose calls in a
                    // failover; a new one reads on.
                    let read =
                        tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(reads)).await;
                    let Ok(results) = read else {
                        if let Ok(fresh) = crate::redis().await {
                            redis = fresh;
                        }
                        break;
                    };
                    let Ok(hashes): Result<Vec<HashMap<String, String>>, _> = results.into_iter().collect()
                    else {
                        if let Ok(fresh) = crate::redis().await {
                            redis = fresh;
                        }
                        break;
                    };
                    let mut p = progress.lock().await;
                    for (id, hash) in chunk.iter().zip(hashes) {
                        if let Some(status) = hash.get("status").filter(|s| *s != "running") {
                            p.finished.insert(*id, Finished::from_hash(status, &hash));
                        }
                    }
                }
            }
        })
    };

    // The submitter keeps `in_flight` tasks going, through broker restarts.
    let submitted_count = Arc::new(AtomicUsize::new(0));
    let stop_submitting = tokio_util::sync::CancellationToken::new();
    let submitter = {
        let (progress, count, config) = (progress.clone(), submitted_count.clone(), config.clone());
        let stop = stop_submitting.clone();
        let namespace = namespace.clone();
        tokio::spawn(async move {
            let mut client: Option<Client> = None;
            for i in 0..config.max_tasks {
                if stop.is_cancelled() {
                    break;
                }
                loop {
                    let open = {
                        let p = progress.lock().await;
                        p.submitted.len() - p.finished.len()
                    };
                    if open < config.in_flight {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let name = match i % 4 {
                    3 => "fan_in_20",
                    1 => "hand_off",
                    _ => "user_registration",
                };
                let context = json!({"user_info": {"email": format!("user{i}@example.com"), "plan": "pro"}});
                let request = TaskRequest::new(&namespace, name, context);
                let id = request.task_id().expect("requests carry a request id");
                // Same request id on every try: a resubmission is the same task.
                loop {
                    if client.is_none() {
                        client = Client::connect(&amqp_url()).await.ok();
                    }
                    if let Some(c) = &client
                        && c.submit(request.clone()).await.is_ok()
                    {
                        break;
                    }
                    client = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                progress.lock().await.submitted.insert(id, name.to_owned());
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The faults, one after another, each once tasks flow again.
    let finished_count = || async { progress.lock().await.finished.len() };
    let mut injected = Vec::new();
    let mut duplicator: Option<Duplicator> = None;
    let mut counts = redis_before.clone();
    let mut extra = 0;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for &fault in &config.faults {
        // Read before the fault, while Redis answers.
        extra = extra_runs(&mut counts, &namespace).await.unwrap_or(extra);
        let before = finished_count().await;
        let at = Instant::now();
        let struck = now_ms();
        eprintln!(
            "chaos: {fault:?} at {:.1} s ({before} tasks finished)",
            started.elapsed().as_secs_f64()
        );
        let mut frozen: Option<(&mut Node, Connections)> = None;
        // A cluster's node that the fault took down comes back once tasks
        // flow again without it: the recovery is the cluster's own.
        let mut restore = false;
        match fault {
            Fault::KillPythonWorker | Fault::KillTypescriptWorker | Fault::KillRubyWorker => {
                let language = fault.language().expect("a kill of a worker in another language");
                nodes.kill_other(language).await?;
            }
            Fault::KillWorker | Fault::KillCoordinator => {
                let (nodes_of_role, role) = match fault {
                    Fault::KillWorker => (&mut nodes.workers, Role::Worker),
                    _ => (&mut nodes.coordinators, Role::Coordinator),
                };
                let mut victim = nodes_of_role.remove(0);
                victim.child.start_kill()?;
                let _ = victim.child.wait().await;
                let replacement = nodes.spawn(role)?;
                match fault {
                    Fault::KillWorker => nodes.workers.push(replacement),
                    _ => nodes.coordinators.push(replacement),
                }
            }
            Fault::PauseWorker | Fault::PauseCoordinator => {
                let node = match fault {
                    Fault::PauseWorker => &mut nodes.workers[0],
                    _ => &mut nodes.coordinators[0],
                };
                let (pid, connections) = (node.pid()?, node.connections());
                fault::signal(pid, "STOP")?;
                tokio::time::sleep(config.process_pause).await;
                fault::signal(pid, "CONT")?;
                frozen = Some((node, connections));
            }
            Fault::PauseRabbitmq | Fault::PauseRedis => {
                let server = if fault == Fault::PauseRabbitmq {
                    "rabbitmq"
                } else {
                    "redis"
                };
                let pid = fault::server_pid(&config.dev_script, server).await?;
                fault::signal(pid, "STOP")?;
                tokio::time::sleep(config.server_pause).await;
                fault::signal(pid, "CONT")?;
            }
            Fault::KillRabbitmqLeader | Fault::StopRabbitmqNode => {
                let queue = topology::service_queue(&namespace, CHAOS_SERVICE);
                let leader = cluster::rabbitmq_leader(&config.dev_script, &queue).await?;
                if fault == Fault::KillRabbitmqLeader {
                    eprintln!("chaos: killing the RabbitMQ node on port {leader}, which leads {queue}");
                    cluster::kill_rabbitmq_node(&config.dev_script, leader).await?;
                } else {
                    let other = cluster::rabbitmq_nodes()
                        .into_iter()
                        .find(|&p| p != leader)
                        .context("a cluster of one RabbitMQ node")?;
                    eprintln!("chaos: stopping the RabbitMQ node on port {other}");
                    cluster::stop_rabbitmq_node(&config.dev_script, other).await?;
                }
                restore = true;
            }
            Fault::KillRedisMaster => {
                let key = keys.index(0);
                let master = cluster::kill_redis_master(&config.dev_script, &key).await?;
                // Started again at once, as its supervisor would: with the
                // coordinators waiting for a replica after each write, the
                // promoted master's shards take no writes until it has one.
                eprintln!(
                    "chaos: killed the Redis master on port {master}; a replica took over; starting it again"
                );
                cluster::start_missing_servers(&config.dev_script).await?;
            }
            Fault::RestartRabbitmq => fault::restart(&config.dev_script, "rabbitmq").await?,
            Fault::RestartRedis => fault::restart(&config.dev_script, "redis").await?,
            Fault::DuplicateResults => {
                duplicator = Some(Duplicator::start(&namespace).await?);
            }
        }
        let ended = now_ms();
        // Recovered once tasks finish again: ten more than at the fault (or,
        // for a pause, than at the resume). If that does not happen in time
        // the run goes on, and the fault is reported as not recovered.
        let (before, from) = if fault.is_pause() {
            (finished_count().await, Instant::now())
        } else {
            (before, at)
        };
        let deadline = Instant::now() + RECOVERY_LIMIT;
        let recovered = loop {
            if finished_count().await >= before + RECOVERY_TASKS {
                break true;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "chaos: no recovery from {fault:?} within {} s",
                    RECOVERY_LIMIT.as_secs()
                );
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let recovery_seconds = from.elapsed().as_secs_f64();
        if restore {
            tokio::time::sleep(config.server_pause).await;
            eprintln!("chaos: starting the cluster's stopped node again");
            cluster::start_missing_servers(&config.dev_script).await?;
        }
        let resumed = match frozen {
            Some((node, connections)) => Some(resumed(node, connections).await),
            None => None,
        };
        injected.push(Injected {
            fault,
            struck,
            ended,
            recovered,
            recovery_seconds,
            resumed,
            extra_runs_before: extra,
        });
        tokio::time::sleep(config.fault_interval).await;
    }

    stop_submitting.cancel();
    submitter.await?;
    let total = submitted_count.load(Ordering::Relaxed);
    eprintln!("chaos: {total} tasks submitted; waiting for the last ones");
    let deadline = Instant::now() + config.finish_timeout;
    while finished_count().await < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let late duplicates arrive before checking that nothing changed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    poller.abort();
    let duplicates_published = duplicator
        .as_ref()
        .map_or(0, |d| d.copies.load(Ordering::Relaxed));
    drop(duplicator);
    nodes.stop().await;
    let services = [
        CHAOS_SERVICE,
        Language::Python.service(),
        Language::Typescript.service(),
        Language::Ruby.service(),
    ];
    crate::delete_namespaces(&[&namespace], &services).await;

    let progress = progress.lock().await;
    let mut report = ChaosReport {
        tasks_submitted: progress.submitted.len(),
        tasks_complete: 0,
        tasks_failed: 0,
        tasks_lost: progress.submitted.len() - progress.finished.len(),
        lost_task_ids: progress
            .submitted
            .keys()
            .filter(|id| !progress.finished.contains_key(id))
            .take(20)
            .copied()
            .collect(),
        joins_not_fired_once: 0,
        results_changed: 0,
        child_tasks: 0,
        child_tasks_wrong: 0,
        duplicate_executions: 0,
        executions: 0,
        duplicates_published,
        faults: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    };
    // A fresh connection: the poller's may have been cut by the restart.
    let mut redis = crate::redis().await?;
    drop(redis_before);
    for (id, finished) in &progress.finished {
        match finished.status.as_str() {
            "complete" => report.tasks_complete += 1,
            _ => report.tasks_failed += 1,
        }
        let hash: HashMap<String, String> = redis.hgetall(keys.task(*id)).await?;
        let template = &registry[&progress.submitted[id]];
        if !join_fired_once(template, &hash) {
            report.joins_not_fired_once += 1;
        }
        if template.name == "hand_off" {
            // The step's result is the child's report; the step names the
            // child it started.
            let step = template
                .step_index("delegate")
                .expect("hand_off has its delegate");
            let reported = hash
                .get(&format!("r:{step}"))
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                .and_then(|r| r["task_id"].as_str().and_then(|c| c.parse::<Uuid>().ok()));
            let named = hash
                .get(&format!("ch:{step}"))
                .and_then(|c| c.parse::<Uuid>().ok());
            let child = reported.filter(|c| named == Some(*c));
            let status: Option<String> = match child {
                Some(c) => redis.hget(keys.task(c), "status").await?,
                None => None,
            };
            if status.as_deref() == Some("complete") {
                report.child_tasks += 1;
            } else {
                report.child_tasks_wrong += 1;
            }
        }
        let now = results(&hash);
        report.results_changed += finished
            .results
            .iter()
            .filter(|(k, v)| now.get(*k) != Some(v))
            .count();
    }
    let runs: HashMap<String, u64> = redis.hgetall(runs_key(&namespace)).await?;
    report.executions = runs.values().sum();
    report.duplicate_executions = runs.values().map(|n| n.saturating_sub(1)).sum();
    // Each fault's extra runs are counted up to the next fault.
    let times: HashMap<Uuid, TaskTimes> = progress
        .finished
        .iter()
        .filter_map(|(id, f)| Some((*id, f.times?)))
        .collect();
    let extra_after = injected
        .iter()
        .skip(1)
        .map(|i| i.extra_runs_before)
        .chain([report.duplicate_executions]);
    report.faults = injected
        .iter()
        .zip(extra_after)
        .map(|(i, after)| i.assess(&times, after))
        .collect();
    let _: () = redis
        .del(&[runs_key(&namespace), run_ids_key(&namespace)])
        .await?;
    Ok(report)
}

/// The join was released by its counter exactly once, and started only
/// after every parent had finished.
fn join_fired_once(template: &TaskTemplate, hash: &HashMap<String, String>) -> bool {
    let join = join_of(template);
    let released = hash.get(&format!("f:{join}")).map(String::as_str);
    let time = |field: String| hash.get(&field).and_then(|v| v.parse::<i64>().ok());
    let Some(started) = time(format!("t0:{join}")) else {
        return false;
    };
    let parents_done = template
        .dag
        .parents(join)
        .iter()
        .all(|p| time(format!("t1:{p}")).is_some_and(|t| t <= started));
    released == Some("1") && parents_done
}

/// The stored result of every completed step, by field.
fn results(hash: &HashMap<String, String>) -> HashMap<String, String> {
    hash.iter()
        .filter(|(k, _)| k.starts_with("r:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
