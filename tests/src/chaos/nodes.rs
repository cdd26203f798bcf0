//! The suite's coordinators and workers: `chaos-node` processes, each
//! logging to a file of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use super::Language;

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

/// What a process of the suite is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Coordinator,
    /// A Rust chaos worker.
    Worker,
    /// The one chaos worker in another language.
    Other(Language),
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Worker => "worker",
            Self::Other(Language::Python) => "python-worker",
            Self::Other(Language::Typescript) => "typescript-worker",
            Self::Other(Language::Ruby) => "ruby-worker",
        }
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
    /// The chaos workers in other languages, one each, the only worker of
    /// its service.
    pub others: Vec<(Language, Node)>,
    pub started: usize,
}

impl Nodes {
    pub fn spawn(&mut self, role: Role) -> anyhow::Result<Node> {
        self.started += 1;
        let log = self.log_dir.join(format!("{}-{}.log", role.name(), self.started));
        let file = std::fs::File::create(&log)?;
        let mut cmd = match role {
            Role::Coordinator => {
                let mut cmd = Command::new(&self.binary);
                cmd.arg("coordinator").arg("--templates").arg(&self.templates);
                cmd
            }
            Role::Worker => {
                let mut cmd = Command::new(&self.binary);
                cmd.arg("worker").arg("--namespace").arg(&self.namespace);
                cmd
            }
            Role::Other(language) => {
                let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
                let mut cmd = match language {
                    Language::Python => Command::new(&self.python),
                    Language::Typescript => Command::new("node"),
                    Language::Ruby => Command::new("ruby"),
                };
                cmd.arg(tests.join(match language {
                    Language::Python => "python/chaos_worker.py",
                    Language::Typescript => "typescript/chaos_worker.mjs",
                    Language::Ruby => "ruby/chaos_worker.rb",
                }));
                cmd.args(["--namespace", &self.namespace, "--service", language.service()]);
                cmd.args(language.callables())
                    .env("TASKER_AMQP_URL", crate::amqp_url())
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
                cmd
            }
        };
        let child = cmd
            .env("RUST_LOG", "info,lapin=error")
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the chaos {}", role.name()))?;
        Ok(Node { child, log })
    }

    /// Starts the coordinators, the Rust workers, and one worker in each
    /// other language.
    pub fn start(&mut self, coordinators: usize, workers: usize) -> anyhow::Result<()> {
        for _ in 0..coordinators {
            let c = self.spawn(Role::Coordinator)?;
            self.coordinators.push(c);
        }
        for _ in 0..workers {
            let w = self.spawn(Role::Worker)?;
            self.workers.push(w);
        }
        for language in Language::ALL {
            let w = self.spawn(Role::Other(language))?;
            self.others.push((language, w));
        }
        Ok(())
    }

    /// SIGKILLs the worker in `language`, and starts a new one.
    pub async fn kill_other(&mut self, language: Language) -> anyhow::Result<()> {
        let at = self
            .others
            .iter()
            .position(|(l, _)| *l == language)
            .context("no worker in that language runs")?;
        let (_, mut victim) = self.others.remove(at);
        victim.child.start_kill()?;
        let _ = victim.child.wait().await;
        let replacement = self.spawn(Role::Other(language))?;
        self.others.push((language, replacement));
        Ok(())
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Node> {
        self.coordinators
            .iter_mut()
            .chain(self.workers.iter_mut())
            .chain(self.others.iter_mut().map(|(_, node)| node))
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
