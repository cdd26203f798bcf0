//! Whether a process is connected to what it needs, logged once per
//! change, and served over HTTP as `/healthz` and `/readyz`.
//!
//! - `GET /healthz` answers 200 while the process runs: for liveness probes.
//! - `GET /readyz` answers 200 when every dependency is connected, and 503
//!   with the names of those that are not: for readiness probes and load
//!   balancers.
//! - `GET /metrics` serves [`crate::metrics`] in the Prometheus text format.
//!
//! Both bodies are plain text, one `name: up|down` line per dependency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// RabbitMQ, as a dependency name.
pub const RABBITMQ: &str = "rabbitmq";
/// Redis, as a dependency name.
pub const REDIS: &str = "redis";

/// The connection state of each dependency. Cloning shares it.
#[derive(Clone, Default)]
pub struct Health {
    // A std mutex: a few instructions under it, never held across an await.
    // `None` until the first attempt to connect: an outage at start is
    // logged like any other.
    state: Arc<Mutex<BTreeMap<&'static str, Option<bool>>>>,
}

impl Health {
    /// A health record with `dependencies`, none of them up until reported.
    #[must_use]
    pub fn new(dependencies: &[&'static str]) -> Self {
        Self {
            state: Arc::new(Mutex::new(dependencies.iter().map(|d| (*d, None)).collect())),
        }
    }

    /// Records that `dependency` works. Logs only when it was down before.
    pub fn up(&self, dependency: &'static str) {
        let was = self
            .state
            .lock()
            .expect("health poisoned")
            .insert(dependency, Some(true));
        if was == Some(Some(false)) {
            info!(dependency, "connected");
        }
    }

    /// Records that `dependency` failed with `error`. Logs once per outage,
    /// not once per message.
    pub fn down(&self, dependency: &'static str, error: &dyn std::fmt::Display) {
        let was = self
            .state
            .lock()
            .expect("health poisoned")
            .insert(dependency, Some(false));
        if was != Some(Some(false)) {
            warn!(dependency, %error, "lost connection; retrying until it is back");
        }
    }

    /// Whether every dependency is up.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.state
            .lock()
            .expect("health poisoned")
            .values()
            .all(|up| *up == Some(true))
    }

    /// One `name: up|down` line per dependency.
    #[must_use]
    pub fn report(&self) -> String {
        self.state
            .lock()
            .expect("health poisoned")
            .iter()
            .map(|(name, up)| format!("{name}: {}\n", if *up == Some(true) { "up" } else { "down" }))
            .collect()
    }
}

/// Serves `/healthz` and `/readyz` on `addr` until `shutdown`.
///
/// # Errors
///
/// Returns an error if `addr` cannot be bound.
pub async fn serve(addr: SocketAddr, health: Health, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = router(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(address = %listener.local_addr()?, "health endpoints listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The routes, for embedding in another server.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn healthz(State(health): State<Health>) -> (StatusCode, String) {
    (StatusCode::OK, health.report())
}

async fn metrics() -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::global().render(),
    )
}

async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, health.report())
}
