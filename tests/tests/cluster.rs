//! On a RabbitMQ cluster of three nodes (`deploy/dev cluster test` runs
//! this, with `TASKER_AMQP_URL` naming them): the node that leads the
//! namespace's step queue is killed with SIGKILL while tasks run, and
//! brought back. The coordinators, the worker and the client reconnect to
//! the other nodes, the quorum queues elect new leaders there, and every
//! task completes with every join fired once.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use tasker_e2e::{Recorder, Stack, TEST_SERVICE, amqp_url, registration_template, unique, worker_config};
use tasker_protocol::topology;
use tasker_protocol::{TaskRequest, TaskStatus};
use tasker_runtime::Client;
use tasker_runtime::broker::broker_urls;
use tasker_worker::Worker;
use uuid::Uuid;

/// Diamonds submitted before the kill, while it happens, and after the
/// node is back.
const BEFORE: usize = 150;
const DURING: usize = 50;
const AFTER: usize = 20;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs `deploy/dev ARGS` and gives back what it printed.
fn dev(args: &[&str]) -> String {
    let out = Command::new(repository().join("deploy/dev"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run deploy/dev {args:?}: {e}"));
    assert!(
        out.status.success(),
        "deploy/dev {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The AMQP port of the node that leads `queue`, asking the node on `ask`.
fn leader_port(queue: &str, ask: u16) -> u16 {
    let node = format!("tasker-{ask}@localhost");
    let listing = dev(&["rabbitmqctl", "-n", &node, "-q", "list_queues", "name", "leader"]);
    let leader = listing
        .lines()
        .find_map(|line| {
            line.strip_prefix(queue)?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("{node} lists no queue {queue}:\n{listing}"));
    leader
        .strip_prefix("tasker-")
        .and_then(|rest| rest.strip_suffix("@localhost"))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{leader} is not a node of deploy/dev cluster"))
}

/// The Erlang VM of the cluster node on `port`, as deploy/dev started it.
fn node_pid(port: u16) -> i32 {
    let state = std::env::var_os("TASKER_STATE_DIR").map_or_else(|| repository().join(".dev"), PathBuf::from);
    let file = state.join(format!("cluster/rabbit-{port}/beam.pid"));
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} holds no PID", file.display()))
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .unwrap()
        .port()
        .expect("a cluster node's URL names its port")
}

async fn submit(client: &Client, ns: &str, n: usize, ids: &mut Vec<Uuid>) {
    for i in 0..n {
        let context = json!({ "user_info": { "email": format!("u{i}@example.com"), "plan": "pro" } });
        let submitted = client
            .submit(TaskRequest::new(ns, "user_registration", context))
            .await
            .expect("the request was confirmed");
        ids.push(submitted.task_id);
    }
}

/// Waits until every task of `ids` is complete, then checks that each
/// step ran once and the join fired once.
async fn all_complete(store: &tasker_coordinator::Store, ids: &[Uuid], steps: usize, join: usize) {
    let (keys, mut redis) = (store.keys(), store.connection());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open: Vec<Uuid> = ids.to_vec();
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {} tasks not complete within 120 s, e.g. {}",
            open.len(),
            ids.len(),
            open[0]
        );
        let mut still = Vec::new();
        for id in open {
            let status: Option<String> = redis.hget(keys.task(id), "status").await.unwrap();
            match status.as_deref() {
                Some("complete") => {}
                Some("running") | None => still.push(id),
                Some(other) => panic!("task {id} ended {other}"),
            }
        }
        open = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in ids {
        let key = keys.task(*id);
        let fired: Option<String> = redis.hget(&key, format!("f:{join}")).await.unwrap();
        assert_eq!(
            fired.as_deref(),
            Some("1"),
            "task {id}: the join fired {fired:?} times"
        );
        for step in 0..steps {
            let state: Option<String> = redis.hget(&key, format!("s:{step}")).await.unwrap();
            assert_eq!(state.as_deref(), Some("completed"), "task {id}, step {step}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a RabbitMQ cluster of three nodes: deploy/dev cluster test runs it"]
async fn killing_the_node_that_leads_the_step_queue_loses_no_task() {
    let urls = amqp_url();
    let nodes: Vec<u16> = broker_urls(&urls).into_iter().map(port_of).collect();
    assert!(
        nodes.len() >= 3,
        "TASKER_AMQP_URL names {} node(s); run this test with deploy/dev cluster test",
        nodes.len()
    );
    let ns = unique("cluster");
    let template = registration_template(&ns);
    let join = template
        .steps
        .iter()
        .position(|s| s.name == "send_welcome_sequence")
        .expect("the diamond's join");
    let recorder = Recorder::default();
    let mut worker = Worker::new(worker_config(32)).namespace(&ns);
    for step in &template.steps {
        worker = worker.handler(step.callable.as_str(), recorder.ok(Duration::from_millis(20)));
    }
    let stack = Stack::start(vec![template.clone()], 2, vec![worker])
        .await
        .unwrap();
    let store = tasker_e2e::store().await.unwrap();

    let mut ids = Vec::new();
    submit(&stack.client, &ns, BEFORE, &mut ids).await;
    let queue = topology::service_queue(&ns, TEST_SERVICE);
    let leader = leader_port(&queue, nodes[0]);
    let survivor = *nodes.iter().find(|&&n| n != leader).unwrap();
    eprintln!("killing the node on {leader}, which leads {queue}");
    let status = Command::new("kill")
        .args(["-9", &node_pid(leader).to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // Submit more through a client of its own: the stack's may have been
    // connected to the node that died.
    let client = Client::connect(&urls).await.unwrap();
    submit(&client, &ns, DURING, &mut ids).await;
    all_complete(&store, &ids, template.steps.len(), join).await;
    let new_leader = leader_port(&queue, survivor);
    assert_ne!(new_leader, leader, "{queue} is still led by the node that died");

    eprintln!("bringing the node on {leader} back");
    dev(&["cluster", "servers"]);
    let mut after = Vec::new();
    submit(&client, &ns, AFTER, &mut after).await;
    all_complete(&store, &after, template.steps.len(), join).await;
    // Every step of every task ran (runs beyond one per step are allowed:
    // delivery is at least once), and the stack's own client, reconnected,
    // still gets a task's outcome.
    assert!(recorder.runs().len() >= (BEFORE + DURING + AFTER) * template.steps.len());
    let context = json!({ "user_info": { "email": "last@example.com" } });
    let last = stack.run(&ns, "user_registration", context).await.unwrap();
    assert_eq!(last.status, TaskStatus::Complete);
    client.close().await;
    stack.stop().await;
}
