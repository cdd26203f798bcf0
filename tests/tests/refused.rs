//! A broker or Redis that refuses the login stops the process with an error
//! that names the URL, password masked, and says what to check; it is not
//! retried forever.

use std::time::Duration;

use tasker_coordinator::CoordinatorConfig;
use tasker_e2e::{amqp_url, coordinator_config, one_step_template, redis_url, unique, worker_config};
use tasker_protocol::TemplateRegistry;
use tasker_worker::Worker;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "not-the-password";

/// `url` with its password replaced by [`PASSWORD`]. Redis refuses it
/// whether or not it has a password of its own, as long as no user name
/// comes with it: Redis' `default` user takes any password when it has none.
fn with_wrong_password(urls: &str) -> String {
    let wrong = |url: &str| {
        let mut url = url::Url::parse(url).unwrap();
        url.set_password(Some(PASSWORD)).unwrap();
        url.to_string()
    };
    // Every node's, for a cluster's URLs.
    tasker_runtime::broker::broker_urls(urls)
        .into_iter()
        .map(wrong)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a coordinator of `config` and gives back its error: it must stop
/// by itself, long before anything would stop it.
async fn coordinator_error(config: CoordinatorConfig) -> String {
    let mut registry = TemplateRegistry::new();
    registry.insert(one_step_template(&unique("refused"), "x"));
    let shutdown = CancellationToken::new();
    let run = tasker_coordinator::run(config, registry, shutdown.clone());
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => panic!("the coordinator stopped without an error"),
        Err(_) => {
            shutdown.cancel();
            panic!("the coordinator still retried a refused login after 10 s")
        }
    }
}

fn assert_says_what_to_check(error: &str, variable: &str) {
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("***"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(error.contains(variable), "{error}");
}

#[tokio::test]
async fn a_coordinator_stops_when_rabbitmq_refuses_its_login() {
    let config = CoordinatorConfig {
        amqp_url: with_wrong_password(&amqp_url()),
        ..coordinator_config()
    };
    assert_says_what_to_check(&coordinator_error(config).await, "TASKER_AMQP_URL");
}

#[tokio::test]
async fn a_coordinator_stops_when_redis_refuses_its_login() {
    let config = CoordinatorConfig {
        redis_url: with_wrong_password(&redis_url()),
        ..coordinator_config()
    };
    assert_says_what_to_check(&coordinator_error(config).await, "TASKER_REDIS_URL");
}

#[tokio::test]
async fn a_worker_stops_when_rabbitmq_refuses_its_login() {
    let mut config = worker_config(1);
    config.amqp_url = with_wrong_password(&amqp_url());
    let worker = Worker::new(config)
        .namespace(unique("refused"))
        .handler("ok", tasker_e2e::Recorder::default().ok(Duration::ZERO));
    let error = tokio::time::timeout(Duration::from_secs(10), worker.run(CancellationToken::new()))
        .await
        .expect("the worker still retried a refused login after 10 s")
        .expect_err("the worker stopped without an error")
        .to_string();
    assert_says_what_to_check(&error, "TASKER_AMQP_URL");
}
