//! `/metrics` counts what happened, after a known run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use tasker_e2e::{Recorder, Stack, eventually, template, unique, worker_config};
use tasker_protocol::TaskStatus;
use tasker_worker::{StepError, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> String {
    for _ in 0..50 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

/// The value of the sample `name{labels}`, if the text has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_after_a_known_run() {
    let ns = unique("metrics");
    let flow = template(&format!(
        "name: fan\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n  - name: start\n    handler: {{ callable: ok }}\n  - name: left\n    handler: {{ callable: flaky }}\n    dependencies: [start]\n    retry: {{ initial_delay: 0.05 }}\n  - name: right\n    handler: {{ callable: ok }}\n    dependencies: [start]\n  - name: join\n    handler: {{ callable: ok }}\n    dependencies: [left, right]\n"
    ));
    let recorder = Recorder::default();
    let calls = Arc::new(AtomicU32::new(0));
    let worker = Worker::new(worker_config(4))
        .namespace(&ns)
        .handler("ok", recorder.ok(Duration::ZERO))
        .handler(
            "flaky",
            recorder.handler(Duration::ZERO, move |ctx| {
                calls.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() == 1 {
                    Err(StepError::retryable("BUSY", "try again"))
                } else {
                    Ok(json!({}))
                }
            }),
        );
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let health = tasker_runtime::health::Health::new(&[]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(tasker_runtime::health::serve(addr, health, shutdown.clone()));
    let stack = Stack::start(vec![flow], 1, vec![worker]).await.unwrap();

    for _ in 0..2 {
        let report = stack.run(&ns, "fan", json!({})).await.unwrap();
        assert_eq!(report.status, TaskStatus::Complete);
    }
    let rejected = stack.client.create_task(&ns, "nope", json!({})).await.unwrap();
    let _ = rejected.wait(Duration::from_secs(10)).await.unwrap();
    let rejections = r#"tasker_tasks_total{namespace="unknown",template="unknown",outcome="rejected"}"#;
    let dead =
        format!(r#"tasker_dead_letters_total{{queue="tasker.requests.{ns}",reason="unknown_template"}}"#);
    // The rejection's dead letter is counted after its reply is sent: wait
    // for it to show, then check every value.
    eventually("the rejection and its dead letter being counted", || async {
        let text = scrape(addr).await;
        sample(&text, rejections).is_some() && sample(&text, &dead).is_some()
    })
    .await;

    let text = scrape(addr).await;
    let task = |outcome: &str| {
        format!(r#"tasker_tasks_total{{namespace="{ns}",template="fan",outcome="{outcome}"}}"#)
    };
    let step = |s: &str, outcome: &str| {
        format!(r#"tasker_steps_total{{namespace="{ns}",template="fan",step="{s}",outcome="{outcome}"}}"#)
    };
    let labels = |s: &str| format!(r#"{{namespace="{ns}",template="fan",step="{s}"}}"#);
    assert_eq!(sample(&text, &task("accepted")), Some(2.0), "{text}");
    assert_eq!(sample(&text, &task("complete")), Some(2.0));
    assert_eq!(sample(&text, &task("failed")), None);
    assert_eq!(
        sample(
            &text,
            &format!(r#"tasker_tasks_in_flight{{namespace="{ns}",template="fan"}}"#)
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, &step("left", "retried")), Some(2.0));
    assert_eq!(sample(&text, &step("left", "completed")), Some(2.0));
    assert_eq!(sample(&text, &step("join", "completed")), Some(2.0));
    assert_eq!(
        sample(
            &text,
            &format!("tasker_step_duration_seconds_count{}", labels("left"))
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("tasker_queue_wait_seconds_count{}", labels("start"))
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("tasker_join_wait_seconds_count{}", labels("join"))
        ),
        Some(2.0)
    );
    assert_eq!(sample(&text, rejections), Some(1.0));
    assert_eq!(sample(&text, &dead), Some(1.0));
    assert!(!text.contains("task_id"), "a task id is never a label");

    stack.stop().await;
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
