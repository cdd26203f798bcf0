//! `/healthz` and `/readyz` tell whether a process is connected.

use std::time::Duration;

use tasker_e2e::process::{free_addr, http_get as get};
use tasker_e2e::{coordinator_config, unique, worker_config};
use tokio_util::sync::CancellationToken;

async fn wait_for(addr: std::net::SocketAddr, path: &str, status: u16) -> String {
    for _ in 0..100 {
        if let Some((s, body)) = get(addr, path).await
            && s == status
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} on {addr} never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_coordinator_and_worker_are_ready() {
    let ns = unique("health");
    let mut registry = tasker_protocol::TemplateRegistry::new();
    registry.insert(tasker_e2e::one_step_template(&ns, "one"));
    let shutdown = CancellationToken::new();

    let coordinator_addr = free_addr();
    let config = tasker_coordinator::CoordinatorConfig {
        health_addr: Some(coordinator_addr),
        ..coordinator_config()
    };
    let run = shutdown.clone();
    let coordinator =
        tokio::spawn(async move { tasker_coordinator::run(config, registry, run).await.unwrap() });
    let body = wait_for(coordinator_addr, "/readyz", 200).await;
    assert_eq!(body, "rabbitmq: up\nredis: up\n");
    assert_eq!(get(coordinator_addr, "/healthz").await.unwrap().0, 200);

    let worker_addr = free_addr();
    let mut config = worker_config(2);
    config.health_addr = Some(worker_addr);
    let worker = tasker_worker::Worker::new(config).namespace(&ns).handler(
        "ok",
        tasker_e2e::Recorder::default().ok(std::time::Duration::ZERO),
    );
    let run = shutdown.clone();
    let worker = tokio::spawn(async move { worker.run(run).await.unwrap() });
    assert_eq!(wait_for(worker_addr, "/readyz", 200).await, "rabbitmq: up\n");

    shutdown.cancel();
    coordinator.await.unwrap();
    worker.await.unwrap();
    tasker_e2e::delete_namespaces(&[&ns], &[tasker_e2e::TEST_SERVICE]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_reach_the_broker_is_alive_but_not_ready() {
    let addr = free_addr();
    let mut config = worker_config(2);
    // Nothing listens on port 1.
    config.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    config.health_addr = Some(addr);
    let shutdown = CancellationToken::new();
    let run = shutdown.clone();
    let worker = tokio::spawn(async move {
        tasker_worker::Worker::new(config)
            .namespace("anything")
            .handler(
                "ok",
                tasker_e2e::Recorder::default().ok(std::time::Duration::ZERO),
            )
            .run(run)
            .await
            .unwrap()
    });
    assert_eq!(wait_for(addr, "/healthz", 200).await, "rabbitmq: down\n");
    assert_eq!(get(addr, "/readyz").await.unwrap().0, 503);
    shutdown.cancel();
    worker.await.unwrap();
}
