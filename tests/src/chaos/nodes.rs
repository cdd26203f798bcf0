//! The suite's coordinators and workers: `chaos-node` processes, each
//! logging to a file of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// How many connections a process has made and lost, by its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Connections {
    pub made: usize,
    pub lost: usize,
}

/// One coordinator or worker process, and its log.
pub(super) struct Node {
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    /// The process's id, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the process has exited")
    }

    /// How often the process has said it is ready (connected and
    /// consuming), once per connection, and how often it has lost a
    /// connection.
    pub fn connections(&self) -> Connections {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
        Connections {
            made: count("coordinator ready") + count("worker ready"),
            lost: count("lost connection"),
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub(super) struct Nodes {
    pub binary: PathBuf,
    pub python: PathBuf,
    pub templates: PathBuf,
    pub namespace: String,
    pub log_dir: PathBuf,
    pub coordinators: Vec<Node>,
    pub workers: Vec<Node>,
    /// The Python chaos worker, the one worker of its service.
    pub python_workers: Vec<Node>,
    pub started: usize,
}

impl Nodes {
    pub fn spawn(&mut self, role: &str) -> anyhow::Result<Node> {
        self.started += 1;
        let log = self.log_dir.join(format!("{role}-{}.log", self.started));
        let file = std::fs::File::create(&log)?;
        let mut cmd = match role {
            "coordinator" => {
                let mut cmd = Command::new(&self.binary);
                cmd.arg("coordinator").arg("--templates").arg(&self.templates);
                cmd
            }
            "python-worker" => {
                let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/chaos_worker.py");
                let mut cmd = Command::new(&self.python);
                cmd.arg(script)
                    .args(["--namespace", &self.namespace, "--service", super::PYTHON_SERVICE]);
                cmd.args(super::PYTHON_CALLABLES)
                    .env("TASKER_AMQP_URL", crate::amqp_url())
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
                cmd
            }
            _ => {
                let mut cmd = Command::new(&self.binary);
                cmd.arg("worker").arg("--namespace").arg(&self.namespace);
                cmd
            }
        };
        let child = cmd
            .env("RUST_LOG", "info,lapin=error")
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        Ok(Node { child, log })
    }

    pub fn start(
        &mut self,
        coordinators: usize,
        workers: usize,
        python_workers: usize,
    ) -> anyhow::Result<()> {
        for _ in 0..coordinators {
            let c = self.spawn("coordinator")?;
            self.coordinators.push(c);
        }
        for _ in 0..workers {
            let w = self.spawn("worker")?;
            self.workers.push(w);
        }
        for _ in 0..python_workers {
            let w = self.spawn("python-worker")?;
            self.python_workers.push(w);
        }
        Ok(())
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Node> {
        self.coordinators
            .iter_mut()
            .chain(self.workers.iter_mut())
            .chain(self.python_workers.iter_mut())
    }

    pub async fn stop(&mut self) {
        for node in self.all() {
            if let Some(pid) = node.child.id() {
                // A paused process cannot act on SIGTERM; wake it first.
                let _ = super::fault::signal(pid, "CONT");
                // SIGTERM, for a graceful stop; kill_on_drop covers the rest.
                let _ = super::fault::signal(pid, "TERM");
            }
        }
        for node in self.all() {
            let _ = tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await;
        }
    }
}
