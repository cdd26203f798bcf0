//! On a Redis Cluster (`deploy/dev cluster test` runs this): what a
//! failover does to tasks whose requests a coordinator acked while their
//! master's replica was cut off, with the coordinator waiting for a
//! replica (`WAIT`) and without.
//!
//! The replica of one master is cut off: it is frozen, and the master drops
//! it once its output buffer for it overflows. Tasks are then submitted;
//! the master is killed, the replica thawed and promoted, and the old
//! master brought back as its replica. Without the wait, the coordinator
//! acked the requests of the tasks of that master's shards as soon as the
//! master had them, and the failover loses them: the run must lose some,
//! or it would show nothing. With the wait, it acks none of them until a
//! replica holds them, and every task completes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use tasker_coordinator::store::Durability;
use tasker_coordinator::{CoordinatorConfig, Store};
use tasker_e2e::chaos::cluster;
use tasker_e2e::chaos::fault::{dev, signal};
use tasker_e2e::{Recorder, Stack, coordinator_config, registration_template, unique, worker_config};
use tasker_protocol::{TaskRequest, TaskStatus, TaskTemplate, TemplateRegistry};
use tasker_worker::Worker;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Tasks submitted while the replica is cut off.
const TASKS: usize = 60;

fn dev_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dev"))
}

/// How a run with `durability` went: of the tasks of the failed master's
/// shards, how many there were and how many were lost.
#[derive(Debug)]
struct Outcome {
    on_the_master: usize,
    lost: usize,
}

async fn run_failover(durability: Durability) -> Outcome {
    let script = dev_script();
    // Every node up, and every replica in sync: one still syncing could
    // not take over.
    dev(&script, &["cluster", "servers"]).await.unwrap();
    let store = tasker_e2e::store().await.unwrap();
    assert!(
        store.is_cluster(),
        "TASKER_REDIS_URL names no Redis Cluster; run deploy/dev cluster test"
    );
    let keys = store.keys();
    let ns = unique("failover");
    let template = registration_template(&ns);

    // The master of the first shard, and its replica.
    let tag_key = keys.index(0);
    let master = cluster::redis_master(&tag_key).await.unwrap();
    let replica = cluster::redis_replica(master).await.unwrap();
    eprintln!("{durability:?}: the master on {master} and its replica on {replica}");

    let stack = Stack::start(vec![template.clone()], 0, Vec::new()).await.unwrap();
    let config = CoordinatorConfig {
        redis_durability: durability,
        redis_wait_timeout: Duration::from_millis(500),
        ..coordinator_config()
    };
    let coordinator = start_coordinator(config, &template);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Cut the replica off: frozen, it reads nothing, and the master drops
    // it once more than its output buffer's limit waits for it.
    let mut direct = redis::Client::open(format!("redis://127.0.0.1:{master}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("replica 256kb 0 0")
        .query_async(&mut direct)
        .await
        .unwrap();
    let replica_pid = cluster::pid(&script, "redis", replica).await.unwrap();
    signal(replica_pid, "STOP").unwrap();
    let junk = format!(
        "failover-test:{}:junk",
        &tag_key[tag_key.find('{').unwrap()..=tag_key.find('}').unwrap()]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _: () = direct.set(&junk, "x".repeat(1 << 20)).await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut direct)
            .await
            .unwrap();
        if info.contains("connected_slaves:0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the master on {master} did not drop its frozen replica: {info}"
        );
    }
    let _: () = direct.del(&junk).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..TASKS {
        let context = json!({ "user_info": { "email": format!("f{i}@example.com"), "plan": "pro" } });
        let submitted = stack
            .client
            .submit(TaskRequest::new(&ns, "user_registration", context))
            .await
            .unwrap();
        ids.push(submitted.task_id);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let task_keys: Vec<String> = ids.iter().map(|id| keys.task(*id)).collect();
    let masters = cluster::redis_masters(&task_keys).await.unwrap();
    let on_the_master: Vec<Uuid> = ids
        .iter()
        .zip(masters)
        .filter(|(_, m)| *m == master)
        .map(|(id, _)| *id)
        .collect();

    // The failover: the master dies, the replica thaws and takes over, and
    // the old master comes back as its replica.
    signal(cluster::pid(&script, "redis", master).await.unwrap(), "KILL").unwrap();
    signal(replica_pid, "CONT").unwrap();
    cluster::wait_for_new_master(&tag_key, master).await.unwrap();
    dev(&script, &["cluster", "servers"]).await.unwrap();
    eprintln!("{durability:?}: the replica on {replica} took over; the old master is back");

    // Now the steps run; every task that survived completes.
    let recorder = Recorder::default();
    let mut worker = Worker::new(worker_config(16)).namespace(&ns);
    for step in &template.steps {
        worker = worker.handler(step.callable.as_str(), recorder.ok(Duration::from_millis(1)));
    }
    let stop_worker = CancellationToken::new();
    let worker = tokio::spawn({
        let stop = stop_worker.clone();
        async move { worker.run(stop).await.unwrap() }
    });
    let lost = settle(&store, &ids).await;
    stop_worker.cancel();
    let _ = worker.await;
    coordinator.0.cancel();
    let _ = coordinator.1.await;
    stack.stop().await;
    tasker_e2e::delete_namespaces(&[&ns], &[tasker_e2e::TEST_SERVICE]).await;
    assert!(
        lost.iter().all(|id| on_the_master.contains(id)),
        "{durability:?}: a task of another master's shard was lost"
    );
    Outcome {
        on_the_master: on_the_master.len(),
        lost: lost.len(),
    }
}

/// Waits until every task of `ids` that exists has completed, up to a
/// minute; gives back those that do not exist.
async fn settle(store: &Store, ids: &[Uuid]) -> Vec<Uuid> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut lost = Vec::new();
        let mut open = 0;
        for id in ids {
            match store.task(*id).await {
                Ok(Some(task)) if task.status == TaskStatus::Complete => {}
                Ok(Some(_)) | Err(_) => open += 1,
                Ok(None) => lost.push(*id),
            }
        }
        if open == 0 || Instant::now() > deadline {
            assert_eq!(open, 0, "{open} tasks neither complete nor lost after a minute");
            return lost;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn start_coordinator(
    config: CoordinatorConfig,
    template: &TaskTemplate,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut registry = TemplateRegistry::new();
    registry.insert(template.clone());
    let token = CancellationToken::new();
    let run = token.clone();
    let handle = tokio::spawn(async move {
        tasker_coordinator::run(config, registry, run)
            .await
            .expect("coordinator failed");
    });
    (token, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster with replicas: deploy/dev cluster test runs it"]
async fn a_failover_loses_acked_tasks_unless_the_coordinator_waits_for_a_replica() {
    let off = run_failover(Durability::Replicas(0)).await;
    eprintln!("without waiting for a replica: {off:?}");
    let on = run_failover(Durability::Replicas(1)).await;
    eprintln!("waiting for a replica: {on:?}");
    assert!(
        off.lost > 0,
        "without the wait, the failover lost none of {} tasks: this run shows nothing",
        off.on_the_master
    );
    assert_eq!(on.lost, 0, "with the wait, the failover lost {} tasks", on.lost);
}
