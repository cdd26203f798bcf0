//! The faults the suite injects, and how each is injected: kills, server
//! restarts, pauses (SIGSTOP, then SIGCONT), and duplicated results.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

use super::Language;

/// A fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a worker during its handlers, and start a new one.
    KillWorker,
    /// SIGKILL the Python worker, the only worker of its service, during
    /// its handlers, and start a new one: its steps wait for it.
    KillPythonWorker,
    /// The same, for the TypeScript worker.
    KillTypescriptWorker,
    /// The same, for the Ruby worker.
    KillRubyWorker,
    /// SIGKILL a coordinator, and start a new one.
    KillCoordinator,
    /// SIGSTOP a worker, and SIGCONT it after the process pause: its steps
    /// must be taken over by the other worker meanwhile.
    PauseWorker,
    /// SIGSTOP a coordinator, and SIGCONT it after the process pause: its
    /// deliveries must be taken over by the other coordinator meanwhile.
    PauseCoordinator,
    /// Stop and start RabbitMQ.
    RestartRabbitmq,
    /// SIGSTOP RabbitMQ, and SIGCONT it after the server pause.
    PauseRabbitmq,
    /// Stop and start Redis.
    RestartRedis,
    /// SIGSTOP Redis, and SIGCONT it after the server pause.
    PauseRedis,
    /// From now on, publish every step result a second time.
    DuplicateResults,
    /// On a cluster: SIGKILL the RabbitMQ node that leads the step queue,
    /// and start it again a few seconds later.
    KillRabbitmqLeader,
    /// On a cluster: SIGKILL the Redis master of the first shard; once its
    /// replica has taken over, start it again, as that replica's replica.
    KillRedisMaster,
    /// On a cluster: stop a RabbitMQ node cleanly, one that does not lead
    /// the step queue, and start it again a few seconds later.
    StopRabbitmqNode,
}

impl Fault {
    /// Every fault, in the order the suite injects them.
    pub const ALL: [Self; 12] = [
        Self::KillWorker,
        Self::KillPythonWorker,
        Self::KillTypescriptWorker,
        Self::KillRubyWorker,
        Self::KillCoordinator,
        Self::PauseWorker,
        Self::PauseCoordinator,
        Self::RestartRabbitmq,
        Self::PauseRabbitmq,
        Self::RestartRedis,
        Self::PauseRedis,
        Self::DuplicateResults,
    ];

    /// The faults of a cluster's run (`deploy/dev cluster chaos`), in order.
    pub const CLUSTER: [Self; 5] = [
        Self::KillRabbitmqLeader,
        Self::KillRedisMaster,
        Self::StopRabbitmqNode,
        Self::KillCoordinator,
        Self::DuplicateResults,
    ];

    /// The language of the worker the fault kills, for a kill of one of
    /// the workers in another language than Rust.
    #[must_use]
    pub fn language(self) -> Option<Language> {
        match self {
            Self::KillPythonWorker => Some(Language::Python),
            Self::KillTypescriptWorker => Some(Language::Typescript),
            Self::KillRubyWorker => Some(Language::Ruby),
            _ => None,
        }
    }

    /// Whether the fault freezes a coordinator or a worker, whose work the
    /// others must take over within [`TAKEOVER_BOUND`].
    #[must_use]
    pub fn freezes_a_process(self) -> bool {
        matches!(self, Self::PauseWorker | Self::PauseCoordinator)
    }

    /// Whether the fault is a pause: a SIGSTOP, then a SIGCONT.
    #[must_use]
    pub fn is_pause(self) -> bool {
        matches!(
            self,
            Self::PauseWorker | Self::PauseCoordinator | Self::PauseRabbitmq | Self::PauseRedis
        )
    }
}

/// How long the work a frozen coordinator or worker holds may take to be
/// taken over by the others: every task in flight when it froze finishes
/// within this, while it is still frozen. What sets it: the AMQP heartbeat
/// (RabbitMQ closes a silent connection after about two and a half, 13 s at
/// the default 5 s, and hands its deliveries to other consumers), and the
/// claim hold (15 s by default), for the retries and expired leases a
/// frozen coordinator had claimed. docs/reliability.md says so too.
pub const TAKEOVER_BOUND: Duration = Duration::from_secs(30);

/// Sends `signal` (`STOP`, `CONT` or `KILL`) to `pid`.
///
/// # Errors
///
/// If `kill` cannot be run or the process is gone.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// The PID of the server `deploy/dev` started (`rabbitmq` or `redis`).
///
/// # Errors
///
/// If `deploy/dev pid` fails: the server was not started by it.
pub async fn server_pid(script: &Path, server: &str) -> anyhow::Result<u32> {
    let output = dev(script, &["pid", server]).await?;
    let pid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    pid.parse()
        .with_context(|| format!("`deploy/dev pid {server}` printed {pid:?}, not a PID"))
}

/// Stops and starts the server `deploy/dev` started, keeping its data.
///
/// # Errors
///
/// If `deploy/dev restart` fails.
pub async fn restart(script: &Path, server: &str) -> anyhow::Result<()> {
    dev(script, &["restart", server]).await.map(|_| ())
}

/// Runs `deploy/dev ARGS`, and fails with what it said if it fails.
///
/// # Errors
///
/// If it cannot be run, or fails.
pub async fn dev(script: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = Command::new(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "`{} {}` failed ({}); were the servers started by deploy/dev? It said:\n{}{}",
            script.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Checks that the servers were started by `deploy/dev`, so they can be
/// restarted and paused; returns why not.
#[must_use]
pub fn restart_blocker(script: &Path) -> Option<String> {
    let Ok(out) = std::process::Command::new(script).arg("status").output() else {
        return Some(format!("{} status cannot be run", script.display()));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = |name: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(name) && l.contains("started by deploy/dev"))
    };
    if ours("RabbitMQ") && ours("Redis") {
        None
    } else {
        Some(
            "RabbitMQ and Redis were not both started by deploy/dev, so they cannot be restarted or paused"
                .into(),
        )
    }
}
