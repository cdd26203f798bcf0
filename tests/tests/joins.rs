//! Joins fire exactly once per task: under load, with every completion
//! event published twice, and with several coordinators at once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tasker_e2e::{
    Duplicator, Queues, Recorder, Stack, eventually, run_many, template, unique, worker_config,
};
use tasker_protocol::{StepState, TaskStatus, topology};
use tasker_worker::Worker;

fn fan_in_template(ns: &str, width: usize) -> tasker_protocol::TaskTemplate {
    let mut yaml = format!(
        "name: fan_in\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: start\n    handler: {{ callable: ok }}\n"
    );
    for i in 0..width {
        yaml +=
            &format!("  - name: branch_{i}\n    handler: {{ callable: ok }}\n    dependencies: [start]\n");
    }
    let all: Vec<String> = (0..width).map(|i| format!("branch_{i}")).collect();
    yaml += &format!(
        "  - name: join\n    handler: {{ callable: ok }}\n    dependencies: [{}]\n",
        all.join(", ")
    );
    template(&yaml)
}

/// Waits until nothing more can come of what was published so far, and
/// stops the stack: the coordinators have handled every step result, the
/// worker has taken every step they published, and its handlers have
/// returned. A join fired twice, or a duplicate result that published a
/// step again, shows only as a run that may come after the task's report,
/// so runs are counted after this rather than at the reports.
async fn settle_and_stop(mut stack: Stack, ns: &str) {
    let queues = Queues::connect().await.unwrap();
    let results = topology::result_queue(ns);
    eventually("the coordinators taking every step result", || async {
        queues.ready(&results).await == 0
    })
    .await;
    // Stopping waits for the results in hand; one not handled in time
    // would go back to the queue and be counted here, as would a result
    // that came in meanwhile, from a step that ran after its task ended.
    stack.stop_coordinators().await;
    assert_eq!(
        queues.ready_once_unconsumed(&results).await,
        0,
        "step results left unhandled: a step ran again after every task had ended, \
         or a coordinator stopped before it had handled a result"
    );
    let steps = tasker_e2e::step_queue(ns);
    eventually("the worker taking every step published", || async {
        queues.ready(&steps).await == 0
    })
    .await;
    queues.close().await;
    // Stopping waits for the handlers the worker has in hand.
    stack.stop().await;
}

/// A worker that remembers no results: every step message it gets runs its
/// handler, so the runs count what the coordinators published. With its
/// memory, a join published twice could be answered from it the second
/// time, and show as one run.
fn forgetful_worker() -> Worker {
    let mut config = worker_config(64);
    config.remembered_results = 0;
    Worker::new(config)
}

/// How many times each (task, step) ran.
fn run_counts(recorder: &Recorder) -> HashMap<(uuid::Uuid, String), usize> {
    let mut counts = HashMap::new();
    for run in recorder.runs() {
        *counts.entry((run.task_id, run.step)).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_way_fan_in_joins_once_per_task_with_200_in_flight_and_every_event_twice() {
    let ns = unique("fan_in");
    let recorder = Recorder::default();
    let worker = forgetful_worker()
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO));
    let stack = Stack::start(vec![fan_in_template(&ns, 50)], 1, vec![worker])
        .await
        .unwrap();
    let duplicator = Duplicator::start(&ns).await.unwrap();

    let started = Instant::now();
    let reports = run_many(
        &stack.client,
        &ns,
        "fan_in",
        200,
        |i| json!({ "n": i }),
        Duration::from_secs(240),
    )
    .await
    .unwrap();
    eprintln!("200 tasks of 52 steps in {:?}", started.elapsed());

    // Let every duplicate reach the coordinator before counting runs.
    let expected_copies = 200 * 52;
    tokio::time::timeout(Duration::from_secs(60), async {
        while duplicator.copies.load(Ordering::Relaxed) < expected_copies {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every step result is published a second time");
    settle_and_stop(stack, &ns).await;
    drop(duplicator);

    assert_eq!(reports.len(), 200);
    for report in &reports {
        assert_eq!(report.status, TaskStatus::Complete);
        assert!(
            report
                .steps
                .iter()
                .all(|s| s.state == StepState::Completed && s.attempts == 1)
        );
    }
    let counts = run_counts(&recorder);
    for report in &reports {
        assert_eq!(
            counts.get(&(report.task_id, "join".to_owned())),
            Some(&1),
            "task {}",
            report.task_id
        );
    }
    // Every handler ran exactly once: duplicates changed nothing.
    assert_eq!(counts.len(), 200 * 52);
    assert!(counts.values().all(|&n| n == 1), "some step ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_run_300_diamonds_with_every_join_once() {
    let ns = unique("two_coord");
    let recorder = Recorder::default();
    let worker =
        tasker_e2e::with_registration_handlers(forgetful_worker().namespace(&ns), &recorder, Duration::ZERO);
    let stack = Stack::start(vec![tasker_e2e::registration_template(&ns)], 2, vec![worker])
        .await
        .unwrap();
    let reports = run_many(
        &stack.client,
        &ns,
        "user_registration",
        300,
        |i| json!({ "n": i }),
        Duration::from_secs(180),
    )
    .await
    .unwrap();
    assert!(reports.iter().all(|r| r.status == TaskStatus::Complete));
    settle_and_stop(stack, &ns).await;
    let counts = run_counts(&recorder);
    assert_eq!(counts.len(), 300 * 5);
    assert!(
        counts.values().all(|&n| n == 1),
        "without faults, no step is ever published twice"
    );
    for report in &reports {
        let join = recorder.runs_of(report.task_id, "send_welcome_sequence");
        assert_eq!(join.len(), 1);
        let parents_done = ["setup_billing_profile", "initialize_preferences"]
            .map(|p| recorder.runs_of(report.task_id, p)[0].finished);
        assert!(parents_done.iter().all(|&t| t <= join[0].started));
    }
}
