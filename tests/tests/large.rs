//! Large results never stall a workflow: a step whose input would be over
//! the size limit fails at once with `input_too_large`, a handler whose
//! result is over it fails with `result_too_large`, a step that names only
//! the results it needs (`results_from`) runs where the whole would not fit,
//! and a report over the limit arrives without its results.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use tasker_e2e::{Stack, template, unique, worker_config};
use tasker_protocol::message::DEFAULT_MAX_MESSAGE_BYTES;
use tasker_protocol::{StepState, TaskStatus, TaskTemplate};
use tasker_worker::{StepContext, StepError, Worker, handler_fn};

/// A chain of `steps` steps, each depending on the one before; with
/// `only_previous`, each names only the previous step's result as its input.
fn chain(ns: &str, steps: usize, only_previous: bool) -> TaskTemplate {
    let mut yaml = format!("name: chain\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n");
    for i in 0..steps {
        let _ = write!(yaml, "  - name: s{i:02}\n    handler: {{ callable: fat }}\n");
        if i > 0 {
            let _ = writeln!(yaml, "    dependencies: [s{:02}]", i - 1);
            if only_previous {
                let _ = writeln!(yaml, "    results_from: [s{:02}]", i - 1);
            }
        }
    }
    template(&yaml)
}

/// A worker whose handler returns `bytes` bytes of text.
fn fat_worker(ns: &str, bytes: usize) -> Worker {
    Worker::new(worker_config(4)).namespace(ns).handler(
        "fat",
        handler_fn(move |ctx: StepContext| async move {
            Ok::<_, StepError>(json!({ "step": ctx.step_name(), "data": "x".repeat(bytes) }))
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_fat_results_fails_at_once_where_a_step_input_crosses_the_limit() {
    let ns = unique("fat_chain");
    let stack = Stack::start(vec![chain(&ns, 16, false)], 1, vec![fat_worker(&ns, 100_000)])
        .await
        .unwrap();
    let started = Instant::now();
    let report = stack.run(&ns, "chain", json!({})).await.unwrap();
    // Each result is about 100 KB and a step carries all of its ancestors':
    // the 12th step, s11, would carry 11 of them, over 1 MiB.
    assert_eq!(report.status, TaskStatus::Failed, "{report:#?}");
    let states: Vec<StepState> = report.steps.iter().map(|s| s.state).collect();
    assert!(
        states[..11].iter().all(|s| *s == StepState::Completed),
        "{states:?}"
    );
    assert_eq!(states[11], StepState::Failed);
    assert!(
        states[12..].iter().all(|s| *s == StepState::Blocked),
        "{states:?}"
    );
    let error = report.steps[11].error.as_ref().unwrap();
    eprintln!("{}", error.message);
    assert_eq!((error.code.as_str(), error.retryable), ("input_too_large", false));
    for needed in [
        "step s11",
        &DEFAULT_MAX_MESSAGE_BYTES.to_string(),
        "the result of s",
        "results_from",
    ] {
        assert!(
            error.message.contains(needed),
            "{needed:?} not in {}",
            error.message
        );
    }
    // At once: no lease ran out, no attempt was retried.
    assert_eq!(report.steps[11].attempts, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the task took {:?} to fail",
        started.elapsed()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_names_only_the_results_it_needs_runs_where_the_whole_would_not_fit() {
    let ns = unique("lean_chain");
    let stack = Stack::start(vec![chain(&ns, 16, true)], 1, vec![fat_worker(&ns, 100_000)])
        .await
        .unwrap();
    let report = stack.run(&ns, "chain", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    // 16 results of 100 KB make a report over 1 MiB: it comes without them,
    // and says so.
    assert!(report.results_omitted);
    assert!(report.steps.iter().all(|s| s.result.is_none()));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_whose_result_is_over_the_limit_fails_with_result_too_large() {
    let ns = unique("too_fat");
    let stack = Stack::start(
        vec![chain(&ns, 2, false)],
        1,
        vec![fat_worker(&ns, DEFAULT_MAX_MESSAGE_BYTES + 1)],
    )
    .await
    .unwrap();
    let started = Instant::now();
    let report = stack.run(&ns, "chain", json!({})).await.unwrap();
    assert_eq!(report.status, TaskStatus::Failed, "{report:#?}");
    assert_eq!(report.steps[1].state, StepState::Blocked);
    let error = report.steps[0].error.as_ref().unwrap();
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("result_too_large", false)
    );
    assert!(error.message.contains("step s00"), "{}", error.message);
    assert!(
        error.message.contains(&DEFAULT_MAX_MESSAGE_BYTES.to_string()),
        "{}",
        error.message
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    stack.stop().await;
}
