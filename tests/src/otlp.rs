//! A real OTLP receiver for tests: rotel, printing every span it gets.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};

/// rotel, receiving spans over OTLP (gRPC and HTTP) on loopback ports of
/// its own and printing each, with its attributes, to a log.
pub struct Receiver {
    process: Child,
    log: PathBuf,
    /// Its OTLP/HTTP endpoint, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub http: String,
    /// Its OTLP/gRPC endpoint.
    pub grpc: String,
}

impl Receiver {
    /// Starts rotel.
    ///
    /// # Panics
    ///
    /// If rotel is not installed (`deploy/dev test` installs it) or does
    /// not start.
    #[must_use]
    pub fn start() -> Self {
        // deploy/dev test installs rotel and names it; a plain `cargo test`
        // finds the same install under .dev/.
        let installed =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev/rotel/rotel/rotel-agent");
        let agent = std::env::var("TASKER_ROTEL_AGENT")
            .ok()
            .or_else(|| installed.exists().then(|| installed.display().to_string()));
        let agent =
            agent.expect("no rotel-agent: run deploy/dev test, which installs it, or set TASKER_ROTEL_AGENT");
        let (grpc, http) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("{}.log", crate::unique("rotel")));
        let process = Command::new(agent)
            .args([
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ])
            .args([
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http}"),
            ])
            // rotel prints what it receives on stdout and its own logs on stderr.
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("stderr")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            process,
            log,
            http: format!("http://127.0.0.1:{http}"),
            grpc: format!("http://127.0.0.1:{grpc}"),
        }
    }

    /// Where it prints what it receives.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.log
    }

    /// Stops the receiver, once the processes that export to it have
    /// flushed, and gives back everything it printed.
    ///
    /// # Panics
    ///
    /// If its log cannot be read.
    pub async fn log(mut self) -> String {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = self.process.kill().await;
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn free_port() -> u16 {
    crate::process::free_addr().port()
}
