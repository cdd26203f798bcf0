//! Random DAGs run end to end: every step starts only after all of its
//! dependencies have finished, and each step runs once.

use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tasker_e2e::{Recorder, Stack, finished, template, unique, worker_config};
use tasker_protocol::{TaskRequest, TaskStatus};
use tasker_worker::Worker;

/// Up to 30 steps; a step depends only on earlier ones, so the graph is
/// acyclic, and on up to 4 of them.
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..=30).prop_flat_map(|n| {
        (0..n)
            .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(4)))
            .collect::<Vec<_>>()
    })
}

fn yaml(ns: &str, name: &str, deps: &[Vec<usize>]) -> String {
    let mut y = format!("name: {name}\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n");
    for (i, ds) in deps.iter().enumerate() {
        let list: Vec<String> = ds.iter().map(|d| format!("s{d}")).collect();
        y += &format!(
            "  - name: s{i}\n    handler: {{ callable: ok }}\n    dependencies: [{}]\n",
            list.join(", ")
        );
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_random_dags_respect_every_dependency() {
    let ns = unique("dags");
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let graphs: Vec<Vec<Vec<usize>>> = (0..12)
        .map(|_| dag().new_tree(&mut runner).expect("a sample").current())
        .collect();
    let templates = graphs
        .iter()
        .enumerate()
        .map(|(i, g)| template(&yaml(&ns, &format!("dag{i}"), g)))
        .collect();
    let recorder = Recorder::default();
    // A small random delay per step shuffles the order in which branches end.
    let worker = Worker::new(worker_config(16)).namespace(&ns).handler(
        "ok",
        recorder.handler(Duration::from_millis(2), |ctx| {
            Ok(json!({ "step": ctx.step_name() }))
        }),
    );
    let stack = Stack::start(templates, 1, vec![worker]).await.unwrap();

    let mut pending = Vec::new();
    for i in 0..graphs.len() {
        pending.push(
            stack
                .client
                .submit(TaskRequest::new(&ns, &format!("dag{i}"), json!({})))
                .await
                .unwrap(),
        );
    }
    for (i, submitted) in pending.into_iter().enumerate() {
        let report = finished(submitted.wait(Duration::from_secs(60)).await.unwrap()).unwrap();
        assert_eq!(report.status, TaskStatus::Complete, "dag{i}: {:?}", graphs[i]);
        for (step, deps) in graphs[i].iter().enumerate() {
            let runs = recorder.runs_of(report.task_id, &format!("s{step}"));
            assert_eq!(runs.len(), 1, "dag{i} s{step} ran {} times", runs.len());
            for d in deps {
                let dep = &recorder.runs_of(report.task_id, &format!("s{d}"))[0];
                assert!(
                    dep.finished <= runs[0].started,
                    "dag{i}: s{step} started before s{d} finished"
                );
            }
            // It was handed the result of every ancestor, no more, no less.
            let template = tasker_e2e::template(&yaml(&ns, "check", &graphs[i]));
            let expected: Vec<String> = {
                let mut names: Vec<String> = template
                    .dag
                    .ancestors(step)
                    .iter()
                    .map(|&a| format!("s{a}"))
                    .collect();
                names.sort();
                names
            };
            assert_eq!(runs[0].inputs, expected, "dag{i} s{step}");
        }
    }
    stack.stop().await;
}
