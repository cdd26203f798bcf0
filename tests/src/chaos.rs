//! The chaos suite: diamonds and 20-way fan-ins under load, with two
//! coordinators and two workers as separate processes, while workers and
//! coordinators are killed with SIGKILL, RabbitMQ and Redis are restarted,
//! and every step result is published twice. Then it counts what was lost.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis::AsyncCommands;
use serde::Serialize;
use serde_json::json;
use tasker_protocol::{TaskRequest, TaskTemplate};
use tasker_worker::Client;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{Duplicator, amqp_url, redis_url, template, unique};

/// Every callable the chaos templates use; the chaos worker serves them all.
pub const CALLABLES: &[&str] = &[
    "Microservices::StepHandlers::CreateUserAccountHandler",
    "Microservices::StepHandlers::SetupBillingProfileHandler",
    "Microservices::StepHandlers::InitializePreferencesHandler",
    "Microservices::StepHandlers::SendWelcomeSequenceHandler",
    "Microservices::StepHandlers::UpdateUserStatusHandler",
    "chaos",
];

/// The callable of the chaos template's step that hands its work to a
/// child task, `errand`, and completes with the child's result.
pub const CHILD_CALLABLE: &str = "chaos_child";

/// The template of the child tasks that `CHILD_CALLABLE` starts.
pub const CHILD_TEMPLATE: &str = "errand";

/// A fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a worker during its handlers, and start a new one.
    KillWorker,
    /// SIGKILL a coordinator, and start a new one.
    KillCoordinator,
    /// Stop and start RabbitMQ.
    RestartRabbitmq,
    /// Stop and start Redis.
    RestartRedis,
    /// From now on, publish every step result a second time.
    DuplicateResults,
}

impl Fault {
    /// Every fault, in the order the suite injects them.
    pub const ALL: [Self; 5] = [
        Self::KillWorker,
        Self::KillCoordinator,
        Self::RestartRabbitmq,
        Self::RestartRedis,
        Self::DuplicateResults,
    ];
}

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
    /// The `chaos-node` binary.
    pub node_binary: PathBuf,
    /// `deploy/dev`, to restart the servers.
    pub dev_script: PathBuf,
    /// Where the processes' logs go.
    pub log_dir: PathBuf,
}

/// What a chaos run found.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// Tasks submitted.
    pub tasks_submitted: usize,
    /// Tasks that finished `complete`.
    pub tasks_complete: usize,
    /// Tasks that finished `failed` (none should: the handlers never fail).
    pub tasks_failed: usize,
    /// Tasks that never finished in time.
    pub tasks_lost: usize,
    /// The first few lost tasks, to look into.
    pub lost_task_ids: Vec<Uuid>,
    /// Joins released other than once, or started before a parent finished.
    pub joins_not_fired_once: usize,
    /// Steps whose stored result changed after their task finished.
    pub results_changed: usize,
    /// `hand_off` tasks whose step completed with its child task, complete.
    pub child_tasks: usize,
    /// `hand_off` tasks that finished without a child task that completed.
    pub child_tasks_wrong: usize,
    /// Handler runs beyond one per (task, step, attempt).
    pub duplicate_executions: u64,
    /// Handler runs in all.
    pub executions: u64,
    /// Step results published a second time on purpose.
    pub duplicates_published: usize,
    /// Each fault, and how long until tasks completed again.
    pub faults: Vec<FaultRecovery>,
    /// The whole run, in seconds.
    pub seconds: f64,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecovery {
    /// Which fault.
    pub fault: Fault,
    /// Whether tasks finished again after it, within [`RECOVERY_LIMIT`]:
    /// false also when too few tasks were in flight to tell, as when
    /// submitting had stopped at `max_tasks`.
    pub recovered: bool,
    /// From the fault to the first tasks finishing after it, in seconds;
    /// the whole wait when it did not recover.
    pub recovery_seconds: f64,
}

/// How long the run waits after a fault for tasks to finish again.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

/// How many tasks must finish after a fault for it to count as recovered.
pub const RECOVERY_TASKS: usize = 10;

impl ChaosReport {
    /// Whether nothing was lost and every join fired once.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.tasks_lost == 0
            && self.joins_not_fired_once == 0
            && self.results_changed == 0
            && self.tasks_failed == 0
            && self.child_tasks_wrong == 0
    }

    /// The report as a table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = String::new();
        let rows: [(&str, String); 12] = [
            ("tasks submitted", self.tasks_submitted.to_string()),
            ("tasks finished complete", self.tasks_complete.to_string()),
            ("tasks finished failed", self.tasks_failed.to_string()),
            ("tasks lost (not finished in time)", self.tasks_lost.to_string()),
            (
                "joins fired other than once",
                self.joins_not_fired_once.to_string(),
            ),
            (
                "steps whose recorded result changed",
                self.results_changed.to_string(),
            ),
            ("tasks done with their child task", self.child_tasks.to_string()),
            (
                "tasks done without their child task",
                self.child_tasks_wrong.to_string(),
            ),
            ("handler executions", self.executions.to_string()),
            (
                "handler executions beyond one per attempt",
                self.duplicate_executions.to_string(),
            ),
            (
                "step results published twice on purpose",
                self.duplicates_published.to_string(),
            ),
            ("run time", format!("{:.1} s", self.seconds)),
        ];
        for (k, v) in rows {
            let _ = writeln!(t, "{k:<45} {v:>10}");
        }
        for f in &self.faults {
            if f.recovered {
                let _ = writeln!(
                    t,
                    "{:<45} {:>8.2} s",
                    format!("recovery after {:?}", f.fault),
                    f.recovery_seconds
                );
            } else {
                let _ = writeln!(
                    t,
                    "{:<45} {:>10}",
                    format!("recovery after {:?}", f.fault),
                    "none"
                );
            }
        }
        t
    }
}

/// The diamond and the 20-way fan-in, in `namespace`.
fn templates(namespace: &str) -> Vec<(String, String)> {
    let diamond = include_str!("../../templates/microservices/user_registration.yaml").replace(
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

struct Nodes {
    binary: PathBuf,
    templates: PathBuf,
    namespace: String,
    log_dir: PathBuf,
    coordinators: Vec<Child>,
    workers: Vec<Child>,
    started: usize,
}

impl Nodes {
    fn spawn(&mut self, role: &str) -> anyhow::Result<Child> {
        self.started += 1;
        let log = std::fs::File::create(self.log_dir.join(format!("{role}-{}.log", self.started)))?;
        let mut cmd = Command::new(&self.binary);
        match role {
            "coordinator" => cmd.arg("coordinator").arg("--templates").arg(&self.templates),
            _ => cmd.arg("worker").arg("--namespace").arg(&self.namespace),
        };
        cmd.env("RUST_LOG", "info,lapin=error")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))
    }

    fn start(&mut self, coordinators: usize, workers: usize) -> anyhow::Result<()> {
        for _ in 0..coordinators {
            let c = self.spawn("coordinator")?;
            self.coordinators.push(c);
        }
        for _ in 0..workers {
            let w = self.spawn("worker")?;
            self.workers.push(w);
        }
        Ok(())
    }

    async fn stop(&mut self) {
        for child in self.coordinators.iter_mut().chain(self.workers.iter_mut()) {
            if let Some(pid) = child.id() {
                // SIGTERM, for a graceful stop; kill_on_drop covers the rest.
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
        }
        for child in self.coordinators.iter_mut().chain(self.workers.iter_mut()) {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// What the poller knows about the tasks.
#[derive(Default)]
struct Progress {
    /// Task id → template name, for every submitted task.
    submitted: HashMap<Uuid, String>,
    /// Finished tasks, with their status and step results at the time.
    finished: HashMap<Uuid, (String, HashMap<String, String>)>,
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
        coordinators: Vec::new(),
        workers: Vec::new(),
        started: 0,
    };
    nodes.start(2, 2)?;
    let progress = Arc::new(Mutex::new(Progress::default()));
    let redis_before = redis::aio::ConnectionManager::new(redis::Client::open(redis_url())?).await?;

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
                    let mut pipe = redis::pipe();
                    for id in chunk {
                        pipe.hgetall(tasker_coordinator::store::task_key(*id));
                    }
                    let Ok(hashes): Result<Vec<HashMap<String, String>>, _> =
                        pipe.query_async(&mut redis).await
                    else {
                        break;
                    };
                    let mut p = progress.lock().await;
                    for (id, hash) in chunk.iter().zip(hashes) {
                        if let Some(status) = hash.get("status").filter(|s| *s != "running") {
                            p.finished.insert(*id, (status.clone(), results(&hash)));
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
    let mut recoveries = Vec::new();
    let mut duplicator: Option<Duplicator> = None;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for fault in &config.faults {
        let before = finished_count().await;
        let at = Instant::now();
        eprintln!(
            "chaos: {fault:?} at {:.1} s ({before} tasks finished)",
            started.elapsed().as_secs_f64()
        );
        match fault {
            Fault::KillWorker => {
                let mut victim = nodes.workers.remove(0);
                victim.start_kill()?;
                let _ = victim.wait().await;
                let replacement = nodes.spawn("worker")?;
                nodes.workers.push(replacement);
            }
            Fault::KillCoordinator => {
                let mut victim = nodes.coordinators.remove(0);
                victim.start_kill()?;
                let _ = victim.wait().await;
                let replacement = nodes.spawn("coordinator")?;
                nodes.coordinators.push(replacement);
            }
            Fault::RestartRabbitmq => restart(&config.dev_script, "rabbitmq").await?,
            Fault::RestartRedis => restart(&config.dev_script, "redis").await?,
            Fault::DuplicateResults => {
                duplicator = Some(Duplicator::start(&namespace).await?);
            }
        }
        // Recovered once tasks finish again: ten more than at the fault. If
        // that does not happen in time the run goes on, and the fault is
        // reported as not recovered.
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
        recoveries.push(FaultRecovery {
            fault: *fault,
            recovered,
            recovery_seconds: at.elapsed().as_secs_f64(),
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
    crate::delete_namespaces(&[&namespace]).await;

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
        faults: recoveries,
        seconds: started.elapsed().as_secs_f64(),
    };
    // A fresh connection: the poller's may have been cut by the restart.
    let mut redis = redis::aio::ConnectionManager::new(redis::Client::open(redis_url())?).await?;
    drop(redis_before);
    for (id, (status, first_results)) in &progress.finished {
        match status.as_str() {
            "complete" => report.tasks_complete += 1,
            _ => report.tasks_failed += 1,
        }
        let hash: HashMap<String, String> = redis.hgetall(tasker_coordinator::store::task_key(*id)).await?;
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
                Some(c) => {
                    redis
                        .hget(tasker_coordinator::store::task_key(c), "status")
                        .await?
                }
                None => None,
            };
            if status.as_deref() == Some("complete") {
                report.child_tasks += 1;
            } else {
                report.child_tasks_wrong += 1;
            }
        }
        let now = results(&hash);
        report.results_changed += first_results
            .iter()
            .filter(|(k, v)| now.get(*k) != Some(v))
            .count();
    }
    let runs: HashMap<String, u64> = redis.hgetall(format!("chaos:runs:{namespace}")).await?;
    report.executions = runs.values().sum();
    report.duplicate_executions = runs.values().map(|n| n.saturating_sub(1)).sum();
    let _: () = redis.del(format!("chaos:runs:{namespace}")).await?;
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

async fn restart(script: &Path, server: &str) -> anyhow::Result<()> {
    let output = Command::new(script)
        .arg("restart")
        .arg(server)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "`{} restart {server}` failed ({}); were the servers started by deploy/dev? It said:\n{}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Checks that the servers were started by `deploy/dev`, so they can be
/// restarted; returns why not.
#[must_use]
pub fn restart_blocker(script: &Path) -> Option<String> {
    let out = std::process::Command::new(script).arg("status").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = |name: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(name) && l.contains("started by deploy/dev"))
    };
    if ours("RabbitMQ") && ours("Redis") {
        None
    } else {
        Some("RabbitMQ and Redis were not both started by deploy/dev, so they cannot be restarted".into())
    }
}
