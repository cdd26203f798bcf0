//! The Rust client connects again when its connection dies, as it does when
//! its broker node dies. The broker closes the client's connection
//! (`rabbitmqctl close_connection`); the next request goes out on a new
//! connection, and its reply comes back.
//!
//! Alone in its file: it closes every client connection, and the tests of
//! one file run at once.

use std::time::Duration;

use serde_json::json;
use tasker_e2e::{Recorder, Stack, registration_template, unique, worker_config};
use tasker_protocol::TaskStatus;
use tasker_worker::Worker;

/// What `deploy/dev rabbitmqctl ARGS` printed.
fn rabbitmqctl(args: &[&str]) -> String {
    let out = tasker_e2e::rabbitmqctl(args).expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connection_died_connects_again_for_its_next_request() {
    let ns = unique("reconnect");
    let template = registration_template(&ns);
    let recorder = Recorder::default();
    let mut worker = Worker::new(worker_config(8)).namespace(&ns);
    for step in &template.steps {
        worker = worker.handler(step.callable.as_str(), recorder.ok(Duration::from_millis(1)));
    }
    let stack = Stack::start(vec![template], 1, vec![worker]).await.unwrap();
    let context = json!({ "user_info": { "email": "a@example.com" } });
    let first = stack
        .run(&ns, "user_registration", context.clone())
        .await
        .unwrap();
    assert_eq!(first.status, TaskStatus::Complete);

    let listing = rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"]);
    let clients: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("tasker-client"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!clients.is_empty(), "no client connection in:\n{listing}");
    for pid in clients {
        rabbitmqctl(&["close_connection", pid, "a test closes the client's connection"]);
    }

    let second = stack.run(&ns, "user_registration", context).await.unwrap();
    assert_eq!(second.status, TaskStatus::Complete);
    stack.stop().await;
}
