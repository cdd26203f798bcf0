//! The store's scripts, called directly: requests and results in one call
//! behave as if each were alone, an item Redis refuses fails only itself,
//! and a step names the child task it started whatever the order of events.

use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;
use serde_json::value::RawValue;
use tasker_coordinator::Store;
use tasker_coordinator::batch::Batcher;
use tasker_coordinator::store::{Created, NewTask, ResultToRecord, StepEnd, Verdict};
use tasker_e2e::{redis_url, template, unique};
use tasker_protocol::{PROTOCOL_VERSION, StepOutcome, StepResult, StepState, TaskTemplate};
use uuid::Uuid;

fn diamond(ns: &str) -> TaskTemplate {
    template(&format!(
        "name: diamond\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: a\n    handler: {{ callable: ok }}\n\
         \x20 - name: b\n    handler: {{ callable: ok }}\n    dependencies: [a]\n\
         \x20 - name: c\n    handler: {{ callable: ok }}\n    dependencies: [a]\n\
         \x20 - name: d\n    handler: {{ callable: ok }}\n    dependencies: [b, c]\n"
    ))
}

async fn store() -> Store {
    Store::connect(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap()
}

/// A request for a task of `template`, with no requester.
fn request(task_id: Uuid, template: &TaskTemplate, redelivered: bool) -> NewTask<'_> {
    NewTask {
        task_id,
        template,
        context: "{}",
        reply: None,
        request_id: None,
        same_context: false,
        traceparent: None,
        parent: None,
        redelivered,
    }
}

async fn new_task(store: &Store, template: &TaskTemplate) -> Uuid {
    create(store, template, Uuid::new_v4()).await
}

/// A task id of the store's first shard: on a Redis Cluster, tasks of one
/// shard are the ones that share a script call.
fn id_in_first_shard(store: &Store) -> Uuid {
    std::iter::repeat_with(Uuid::new_v4)
        .find(|id| store.keys().shard_of(*id) == 0)
        .expect("an id of every shard comes up")
}

async fn create(store: &Store, template: &TaskTemplate, task_id: Uuid) -> Uuid {
    let request = store.prepare_task(request(task_id, template, false), |_| Duration::from_secs(60));
    let created = store.create_tasks(&[request]).await.unwrap().pop().unwrap();
    assert_eq!(created.unwrap(), Created::New { roots: vec![0] });
    task_id
}

/// A diamond template, a store, and two new tasks of it.
async fn two_tasks() -> (TaskTemplate, Store, Uuid, Uuid) {
    let template = diamond(&unique("batch"));
    let store = store().await;
    let (first, second) = (
        new_task(&store, &template).await,
        new_task(&store, &template).await,
    );
    (template, store, first, second)
}

fn completed(store: &Store, template: &TaskTemplate, task_id: Uuid, step: usize) -> ResultToRecord {
    let now = Utc::now();
    let result = StepResult {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        namespace: template.namespace.clone(),
        task_name: template.name.clone(),
        task_version: template.version.to_string(),
        step: template.steps[step].name.clone(),
        attempt: 1,
        started_at: now,
        finished_at: now,
        outcome: StepOutcome::Completed {
            result: RawValue::from_string(format!("{{\"step\":{step}}}")).unwrap(),
        },
    };
    let end = StepEnd {
        template,
        step,
        result: &result,
        redelivered: false,
        traceparent: None,
    };
    store.prepare_result(end, |_| Duration::from_secs(60))
}

#[tokio::test]
async fn a_batch_applies_its_results_in_order_as_if_each_were_recorded_alone() {
    let (template, store, first, second) = two_tasks().await;

    let batch = [
        completed(&store, &template, first, 0),
        completed(&store, &template, first, 0),
        completed(&store, &template, second, 0),
        completed(&store, &template, first, 1),
        completed(&store, &template, first, 2),
    ];
    let recorded: Vec<_> = store
        .record_results(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let verdicts: Vec<Verdict> = recorded.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Applied,
            Verdict::Duplicate,
            Verdict::Applied,
            Verdict::Applied,
            Verdict::Applied
        ]
    );
    let ready: Vec<&[usize]> = recorded.iter().map(|r| r.ready.as_slice()).collect();
    assert_eq!(ready, [&[1, 2][..], &[], &[1, 2], &[], &[3]]);
    // The join's inputs are the results recorded earlier in the same call.
    assert_eq!(recorded[4].inputs.results[&1], "{\"step\":1}");
    assert_eq!(recorded[4].inputs.results[&2], "{\"step\":2}");

    let snapshot = store.task(first).await.unwrap().unwrap();
    let states: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Completed,
            StepState::Completed,
            StepState::Completed,
            StepState::Enqueued
        ]
    );
    // A step released by its dependencies carries the time of its release;
    // a root is enqueued with its task.
    assert_eq!(snapshot.steps[0].released_at, None);
    let released = snapshot.steps[3].released_at.expect("the join was released");
    assert!(released >= snapshot.steps[2].finished_at.unwrap());
}

#[tokio::test]
async fn a_result_redis_refuses_fails_alone_and_its_batch_is_recorded_once() {
    let template = diamond(&unique("batch"));
    let store = store().await;
    // All in one shard, so that they share one call on a cluster too.
    let first = create(&store, &template, id_in_first_shard(&store)).await;
    let second = create(&store, &template, id_in_first_shard(&store)).await;
    // A task key that holds a string: every hash command on it fails.
    let broken = id_in_first_shard(&store);
    let (keys, mut redis) = (store.keys(), store.connection());
    let _: () = redis.set(keys.task(broken), "not a hash").await.unwrap();

    // On this single-threaded runtime, all three are queued before the
    // recorder runs: they go to Redis as one batch, which fails at the
    // second result after the first one was written.
    let recorder = Batcher::start(store.clone(), 1);
    let (a, b, c) = tokio::join!(
        recorder.apply(completed(&store, &template, first, 0)),
        recorder.apply(completed(&store, &template, broken, 0)),
        recorder.apply(completed(&store, &template, second, 0)),
    );
    let b = b.unwrap_err();
    assert!(b.to_string().contains("WRONGTYPE"), "{b}");
    // The first was written by the failed call, then handed back again as
    // a redelivery; the third was written once, by its own call.
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!((a.verdict, a.ready.as_slice()), (Verdict::Duplicate, &[1, 2][..]));
    assert_eq!((c.verdict, c.ready.as_slice()), (Verdict::Applied, &[1, 2][..]));
    // Each child was released once, whichever call released it.
    for task in [first, second] {
        let released: Vec<Option<u32>> = redis.hmget(keys.task(task), &["f:1", "f:2"]).await.unwrap();
        assert_eq!(released, [Some(1), Some(1)], "task {task}");
        let waiting: Option<i64> = redis.hget(keys.task(task), "w:3").await.unwrap();
        assert_eq!(waiting, Some(2), "task {task}: the join still waits for both");
    }
    let _: () = redis.del(keys.task(broken)).await.unwrap();
}

#[tokio::test]
async fn a_batch_of_requests_creates_each_task_once() {
    let ns = unique("batch");
    let template = diamond(&ns);
    let store = store().await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let request = |task_id, redelivered| {
        store.prepare_task(request(task_id, &template, redelivered), |_| {
            Duration::from_secs(60)
        })
    };
    let created: Vec<Created> = store
        .create_tasks(&[
            request(first, false),
            request(first, true),
            request(second, false),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        created,
        [
            Created::New { roots: vec![0] },
            // A redelivered request for the task just created gets its
            // roots back, to publish again.
            Created::Existing {
                status: tasker_protocol::TaskStatus::Running,
                republish: vec![0]
            },
            Created::New { roots: vec![0] },
        ]
    );
}

#[tokio::test]
async fn a_key_with_another_context_is_refused_and_changes_nothing_while_each_requester_is_named() {
    let template = diamond(&unique("conflict"));
    let store = store().await;
    let task_id = Uuid::new_v4();
    let (first_id, second_id) = (Uuid::new_v4(), Uuid::new_v4());
    let ask = |context: &'static str, reply: (&'static str, &'static str), request_id| NewTask {
        context,
        reply: Some(reply),
        request_id: Some(request_id),
        same_context: true,
        ..request(task_id, &template, false)
    };
    let lease = |_| Duration::from_secs(60);
    let created: Vec<Created> = store
        .create_tasks(&[
            store.prepare_task(ask(r#"{"a":1}"#, ("q-1", "c-1"), first_id), lease),
            store.prepare_task(ask(r#"{"a":2}"#, ("q-2", "c-2"), Uuid::new_v4()), lease),
            store.prepare_task(ask(r#"{"a":1}"#, ("q-3", "c-3"), second_id), lease),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let running = tasker_protocol::TaskStatus::Running;
    assert_eq!(
        created,
        [
            Created::New { roots: vec![0] },
            Created::Conflict { status: running },
            Created::Existing {
                status: running,
                republish: vec![]
            },
        ]
    );
    let task = store.task(task_id).await.unwrap().unwrap();
    let mut replies: Vec<_> = task
        .replies
        .iter()
        .map(|r| (r.queue.as_str(), r.correlation.as_str(), r.request_id))
        .collect();
    replies.sort_unstable();
    // The refused requester is not among those who hear of the task.
    assert_eq!(
        replies,
        [("q-1", "c-1", Some(first_id)), ("q-3", "c-3", Some(second_id))]
    );
}

#[tokio::test]
async fn a_child_that_reports_before_its_step_is_noted_is_still_named_by_the_step() {
    let (template, store, task_id, _) = two_tasks().await;
    let child = Uuid::new_v4();
    // The child's report completes the step first...
    let report = completed(&store, &template, task_id, 0);
    store
        .record_results(&[report])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    // ...then the worker's note that the attempt waits for it arrives.
    assert!(
        !store
            .wait_for_child(task_id, &template, 0, 1, child)
            .await
            .unwrap()
    );
    let task = store.task(task_id).await.unwrap().unwrap();
    assert_eq!(task.steps[0].state, StepState::Completed);
    assert_eq!(task.steps[0].child, Some(child));
}

#[tokio::test]
async fn a_cancelled_task_lists_its_cancelled_steps_as_done() {
    let (template, store, task_id, _) = two_tasks().await;
    let cancel = tasker_coordinator::store::Operation::Cancel;
    store
        .operate(task_id, &template, cancel, |_| Duration::from_secs(60))
        .await
        .unwrap();
    // The root was running; its result ends the task, cancelled.
    store
        .record_results(&[completed(&store, &template, task_id, 0)])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    let listed = store
        .list_tasks(Some(&template.namespace), None, 10)
        .await
        .unwrap();
    let line = listed.iter().find(|t| t.task_id == task_id).unwrap();
    assert_eq!(line.status, tasker_protocol::TaskStatus::Cancelled);
    assert_eq!((line.steps_done, line.steps), (4, 4), "{line:?}");
}
