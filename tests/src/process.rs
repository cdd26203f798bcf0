//! Workers in processes of their own: Rust ones (`chaos-node`) and the
//! microservices example's services in Python, TypeScript and Ruby, with
//! what a test asks of them over HTTP (`/readyz`, `/metrics`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; the status code and the body, or `None` if
/// nothing answered.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

/// A loopback address no one listens on now.
///
/// # Panics
///
/// If the system has no free port.
#[must_use]
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address")
}

/// The Python of the venv that `deploy/dev test` makes
/// (`TASKER_PYTHON`), with the SDK and the microservices services in it.
///
/// # Panics
///
/// If there is none: the message says how to make it.
#[must_use]
pub fn python() -> PathBuf {
    let made = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev/python-venv/bin/python");
    std::env::var_os("TASKER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| made.exists().then_some(made))
        .expect("no Python venv: run deploy/dev test, which makes one, or set TASKER_PYTHON to a python with worker/python and examples/microservices/python installed")
}

/// The repository's root.
fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The language of a service of the microservices example.
#[derive(Debug, Clone, Copy)]
pub enum Language<'a> {
    /// The Rust SDK's, run by the `chaos-node` binary at this path.
    Rust(&'a Path),
    /// The Python example.
    Python,
    /// The TypeScript example.
    TypeScript,
    /// The Ruby example.
    Ruby,
}

/// A process a test started, killed when dropped.
pub struct Process {
    child: Child,
    /// What it is, for messages.
    pub name: String,
    /// Where it serves `/readyz` and `/metrics`, if it does.
    pub health: Option<SocketAddr>,
}

impl Process {
    /// Starts `command`, its output going to the test's.
    ///
    /// # Panics
    ///
    /// If it cannot be started.
    #[must_use]
    pub fn start(name: &str, mut command: Command, health: Option<SocketAddr>) -> Self {
        // The tests' servers, unless the command names others.
        for (var, url) in [
            ("TASKER_AMQP_URL", crate::amqp_url()),
            ("TASKER_REDIS_URL", crate::redis_url()),
        ] {
            if !command.get_envs().any(|(k, _)| k == var) {
                command.env(var, url);
            }
        }
        command.stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self {
            child,
            name: name.to_owned(),
            health,
        }
    }

    /// A Rust worker of one service of the microservices example, serving
    /// `namespace`, each handler taking `latency`; `node` is the
    /// `chaos-node` binary (`env!("CARGO_BIN_EXE_chaos-node")`).
    #[must_use]
    pub fn rust_microservice(node: &Path, namespace: &str, service: &str, latency: Duration) -> Self {
        Self::microservice(Language::Rust(node), namespace, service, latency, |_| ())
    }

    /// A Python service of the microservices example, serving `namespace`,
    /// each handler taking `latency`.
    #[must_use]
    pub fn python_microservice(namespace: &str, service: &str, latency: Duration) -> Self {
        Self::microservice(Language::Python, namespace, service, latency, |_| ())
    }

    /// A TypeScript service of the microservices example, serving
    /// `namespace`, each handler taking `latency`.
    #[must_use]
    pub fn typescript_microservice(namespace: &str, service: &str, latency: Duration) -> Self {
        Self::microservice(Language::TypeScript, namespace, service, latency, |_| ())
    }

    /// A Ruby service of the microservices example, serving `namespace`,
    /// each handler taking `latency`.
    #[must_use]
    pub fn ruby_microservice(namespace: &str, service: &str, latency: Duration) -> Self {
        Self::microservice(Language::Ruby, namespace, service, latency, |_| ())
    }

    /// A service of the microservices example in `language`, serving
    /// `namespace`, each handler taking `latency`, its command set up
    /// further by `setup` (its environment, where its output goes).
    ///
    /// # Panics
    ///
    /// For TypeScript, if the example's build is missing (`npm run build`
    /// in `examples/microservices/typescript`, which `deploy/dev test`
    /// does).
    #[must_use]
    pub fn microservice(
        language: Language,
        namespace: &str,
        service: &str,
        latency: Duration,
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        let health = free_addr();
        let ms = latency.as_millis();
        let (name, mut command) = if let Language::Rust(node) = language {
            let mut command = Command::new(node);
            command.args(["team-worker", "--team", "microservices", "--namespace", namespace]);
            command.args(["--service", service, "--health-addr", &health.to_string()]);
            command.args(["--latency-ms", &ms.to_string()]);
            ("rust", command)
        } else {
            let (name, mut command) = match language {
                Language::Python => {
                    let mut command = Command::new(python());
                    command.args(["-m", "tasker_example_microservices"]);
                    ("python", command)
                }
                Language::TypeScript => {
                    let main = repository().join("examples/microservices/typescript/dist/src/main.js");
                    assert!(
                        main.exists(),
                        "{} is missing: build the TypeScript example with `npm ci && npm run build` in examples/microservices/typescript (deploy/dev test does)",
                        main.display()
                    );
                    let mut command = Command::new("node");
                    command.arg(main);
                    ("typescript", command)
                }
                Language::Ruby | Language::Rust(_) => {
                    let mut command = Command::new("ruby");
                    command.arg(repository().join("examples/microservices/ruby/bin/microservices"));
                    ("ruby", command)
                }
            };
            // The runners take the Python one's arguments and
            // TASKER_HEALTH_ADDR; MIN included, MAX excluded: exactly
            // `latency`.
            command.args([service, "--namespace", namespace]);
            command.args(["--latency-ms", &format!("{ms}..{}", ms + 1)]);
            command.env("TASKER_HEALTH_ADDR", health.to_string());
            // The test's own receiver, if any; none by default.
            command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
            (name, command)
        };
        setup(&mut command);
        Self::start(&format!("{service} ({name})"), command, Some(health))
    }

    /// A Rust worker of `service` whose one handler, for `callable`, sleeps
    /// `sleep` and completes; `node` is the `chaos-node` binary.
    #[must_use]
    pub fn sleeper(node: &Path, namespace: &str, service: &str, callable: &str, sleep: Duration) -> Self {
        let mut command = Command::new(node);
        command.args(["sleeper", "--namespace", namespace, "--service", service]);
        command.args([
            "--callable",
            callable,
            "--sleep-ms",
            &sleep.as_millis().to_string(),
        ]);
        Self::start(&format!("{service} sleeper"), command, None)
    }

    /// Waits until it answers `/readyz` with 200.
    ///
    /// # Panics
    ///
    /// If it serves no health endpoint, exits, or is not ready in 30 s.
    pub async fn ready(&mut self) {
        let addr = self
            .health
            .unwrap_or_else(|| panic!("{} serves no /readyz", self.name));
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("a child's status") {
                panic!("{} exited before it was ready: {status}", self.name);
            }
            if matches!(http_get(addr, "/readyz").await, Some((200, _))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} was not ready within 30 s", self.name);
    }

    /// Its `/metrics` text.
    ///
    /// # Panics
    ///
    /// If it serves no health endpoint or does not answer.
    pub async fn metrics(&self) -> String {
        let addr = self
            .health
            .unwrap_or_else(|| panic!("{} serves no /metrics", self.name));
        match http_get(addr, "/metrics").await {
            Some((200, body)) => body,
            other => panic!("{}'s /metrics answered {other:?}", self.name),
        }
    }

    /// Stops it with SIGTERM, as an orchestrator would, so that it finishes
    /// its work and flushes its spans; with SIGKILL if it has not exited
    /// after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many times `step` of `namespace` ran in a worker, from its
/// `/metrics` (the count of `tasker_step_duration_seconds`): zero if it
/// never did.
#[must_use]
pub fn runs_in_metrics(metrics: &str, namespace: &str, step: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tasker_step_duration_seconds_count{"))
        .filter(|l| {
            l.contains(&format!("namespace=\"{namespace}\"")) && l.contains(&format!("step=\"{step}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}
