//! One task is one trace, across the coordinator and two worker processes,
//! as received by a real OTLP receiver (rotel, from PyPI), with one span per
//! step attempt under its publish span, the attributes, and the retry.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tasker_e2e::otlp::Receiver;
use tasker_e2e::{amqp_url, redis_url, unique};
use tasker_protocol::{TaskRequest, TaskStatus};
use tokio::process::{Child, Command};

/// One span as rotel prints it with `--debug-log-verbosity detailed`.
#[derive(Debug, Default, Clone)]
struct Span {
    service: String,
    trace: String,
    parent: String,
    id: String,
    name: String,
    kind: String,
    status: String,
    attributes: HashMap<String, String>,
    links: Vec<String>,
}

fn parse(log: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut service = String::new();
    let mut current: Option<Span> = None;
    let mut in_attributes = false;
    let mut in_links = false;
    let value = |line: &str| {
        line.split_once(':')
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let unwrap = |v: &str| {
        v.split_once('(')
            .map(|(_, rest)| rest.trim_end_matches(')').to_owned())
            .unwrap_or_else(|| v.to_owned())
    };
    for line in log.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("-> service.name:") {
            service = unwrap(&value(trimmed));
        } else if trimmed.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(Span {
                service: service.clone(),
                ..Span::default()
            });
            in_attributes = false;
            in_links = false;
        } else if let Some(span) = current.as_mut() {
            if trimmed.starts_with("Trace ID") {
                span.trace = value(trimmed);
            } else if trimmed.starts_with("Parent ID") {
                span.parent = value(trimmed);
            } else if trimmed.starts_with("ID ") {
                span.id = value(trimmed);
            } else if trimmed.starts_with("Name ") {
                span.name = value(trimmed);
            } else if trimmed.starts_with("Kind ") {
                span.kind = value(trimmed);
            } else if trimmed.starts_with("Status code") {
                span.status = value(trimmed);
            } else if trimmed.starts_with("Attributes:") {
                in_attributes = true;
            } else if trimmed.starts_with("Links:") {
                in_attributes = false;
                in_links = true;
            } else if trimmed.starts_with("Events:") || trimmed.starts_with("ResourceSpans") {
                in_attributes = false;
            } else if in_links && trimmed.starts_with("-> ID:") {
                span.links.push(value(trimmed));
            } else if in_attributes && line.starts_with("     -> ") {
                let (k, v) = trimmed
                    .trim_start_matches("-> ")
                    .split_once(": ")
                    .unwrap_or_default();
                span.attributes.insert(k.to_owned(), unwrap(v));
            }
        }
    }
    spans.extend(current);
    spans
}

fn node(args: &[&str], service: &str, endpoint: &str, protocol: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chaos-node"))
        .args(args)
        .env("TASKER_AMQP_URL", amqp_url())
        .env("TASKER_REDIS_URL", redis_url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_SERVICE_NAME", service)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn stop(child: &mut Child) {
    // SIGTERM: a graceful stop flushes the spans.
    let _ = std::process::Command::new("kill")
        .arg(child.id().unwrap().to_string())
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_one_trace_across_three_processes() {
    let receiver = Receiver::start();
    let log_path = receiver.path().to_owned();
    let ns = unique("traced");
    let dir = tasker_e2e::registration_templates_dir(&ns);
    let (http_endpoint, grpc_endpoint) = (receiver.http.clone(), receiver.grpc.clone());
    // Declared first, so that no request can go astray while they start.
    let stack = tasker_e2e::Stack::start(vec![tasker_e2e::registration_template(&ns)], 0, vec![])
        .await
        .unwrap();
    let mut processes = vec![
        node(
            &["coordinator", "--templates", dir.to_str().unwrap()],
            "coordinator",
            &http_endpoint,
            "http/protobuf",
        ),
        node(
            &["worker", "--namespace", &ns, "--noop"],
            "worker-a",
            &grpc_endpoint,
            "grpc",
        ),
        node(
            &["worker", "--namespace", &ns, "--noop"],
            "worker-b",
            &http_endpoint,
            "http/protobuf",
        ),
    ];

    let request = TaskRequest::new(
        &ns,
        "user_registration",
        json!({ "fail_first_attempt_of": "setup_billing_profile" }),
    );
    let submitted = stack.client.submit(request).await.unwrap();
    let task_id = submitted.task_id.to_string();
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(60)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete);
    for p in &mut processes {
        stop(p).await;
    }
    stack.stop().await;
    tasker_e2e::delete_namespaces(&[&ns], &[tasker_e2e::bench::BENCH_SERVICE]).await;

    let spans: Vec<Span> = parse(&receiver.log().await)
        .into_iter()
        .filter(|s| s.attributes.get("tasker.task.id") == Some(&task_id))
        .collect();
    assert!(
        !spans.is_empty(),
        "rotel received no span of task {task_id}; its log is {}",
        log_path.display()
    );
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace.as_str()).collect();
    assert_eq!(traces.len(), 1, "one trace per task, got {traces:?}");
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(services.contains("coordinator"), "{services:?}");
    assert!(
        services.contains("worker-a") && services.contains("worker-b"),
        "two worker processes: {services:?}"
    );

    // One consumer span per step attempt: five steps, billing twice.
    let processes: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service.starts_with("worker-") && s.kind == "SPAN_KIND_CONSUMER")
        .collect();
    for process in &processes {
        assert_eq!(
            process.name,
            format!("process {}", process.attributes["tasker.step.name"])
        );
    }
    let attempts: BTreeSet<(String, String)> = processes
        .iter()
        .map(|s| {
            (
                s.attributes["tasker.step.name"].clone(),
                s.attributes["tasker.step.attempt"].clone(),
            )
        })
        .collect();
    assert_eq!(processes.len(), 6, "{attempts:?}");
    assert!(attempts.contains(&("setup_billing_profile".into(), "2".into())));
    for p in &processes {
        assert_eq!(p.kind, "SPAN_KIND_CONSUMER");
        assert_eq!(p.attributes["messaging.system"], "rabbitmq");
        assert_eq!(
            p.attributes["messaging.destination.name"],
            tasker_protocol::topology::service_queue(&ns, tasker_e2e::bench::BENCH_SERVICE)
        );
        assert!(p.attributes.contains_key("messaging.message.id"));
        for key in [
            "tasker.namespace",
            "tasker.task.name",
            "tasker.task.version",
            "tasker.step.outcome",
        ] {
            assert!(p.attributes.contains_key(key), "{key} missing on {p:?}");
        }
        // Its parent is the publish span of the same step and attempt.
        let parent = spans
            .iter()
            .find(|s| s.id == p.parent)
            .unwrap_or_else(|| panic!("no parent for {p:?}"));
        assert_eq!(parent.kind, "SPAN_KIND_PRODUCER");
        assert_eq!(
            parent.name,
            format!("publish {}", p.attributes["tasker.step.name"])
        );
        assert_eq!(
            parent.attributes["tasker.step.attempt"],
            p.attributes["tasker.step.attempt"]
        );
        assert_eq!(parent.service, "coordinator");
    }
    // The join waited for both branches: its publish links to the recording
    // of each branch's result.
    let join = spans
        .iter()
        .find(|s| s.name == "publish send_welcome_sequence")
        .unwrap();
    assert_eq!(join.links.len(), 2, "{join:?}");
    for link in &join.links {
        let linked = spans
            .iter()
            .find(|s| &s.id == link)
            .unwrap_or_else(|| panic!("link to an unknown span {link}"));
        assert_eq!(
            (linked.name.as_str(), linked.service.as_str()),
            ("record result", "coordinator")
        );
    }
    // The task's whole life is one span of the coordinator's.
    let life = spans
        .iter()
        .find(|s| s.name == format!("task {ns}/user_registration"))
        .expect("a span for the task's life");
    assert_eq!(life.service, "coordinator");
    assert_eq!(life.attributes["tasker.task.status"], "complete");
    // The retry is visible: the failed attempt is an error with its code.
    let failed = processes
        .iter()
        .find(|s| {
            s.attributes["tasker.step.name"] == "setup_billing_profile"
                && s.attributes["tasker.step.attempt"] == "1"
        })
        .unwrap();
    assert_eq!(failed.status, "STATUS_CODE_ERROR");
    assert_eq!(failed.attributes["tasker.step.outcome"], "failed_retryable");
    std::fs::remove_dir_all(&dir).ok();
}

/// A child task in another namespace joins its parent's trace: the
/// parent's worker publishes the request in a "start child" span, the
/// child's coordinator accepts it under that span, and the child's steps
/// and its report to the parent follow in the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_task_is_part_of_its_parents_trace() {
    let receiver = Receiver::start();
    let (support, payments) = (unique("customer_success"), unique("payments"));
    let dir = std::env::temp_dir().join(&support);
    std::fs::create_dir_all(&dir).unwrap();
    let support_yaml = include_str!("../../templates/customer_success/process_refund.yaml")
        .replace(
            "namespace_name: customer_success",
            &format!("namespace_name: {support}"),
        )
        .replace(
            "child_namespace: payments",
            &format!("child_namespace: {payments}"),
        );
    let payments_yaml = include_str!("../../templates/payments/process_refund_1_1_0.yaml")
        .replace("namespace_name: payments", &format!("namespace_name: {payments}"));
    std::fs::write(dir.join("support.yaml"), &support_yaml).unwrap();
    std::fs::write(dir.join("payments.yaml"), &payments_yaml).unwrap();
    let stack = tasker_e2e::Stack::start(
        vec![
            tasker_e2e::template(&support_yaml),
            tasker_e2e::template(&payments_yaml),
        ],
        0,
        vec![],
    )
    .await
    .unwrap();
    let mut processes = vec![
        node(
            &["coordinator", "--templates", dir.to_str().unwrap()],
            "coordinator",
            &receiver.http,
            "http/protobuf",
        ),
        node(
            &[
                "team-worker",
                "--team",
                "customer_success",
                "--namespace",
                &support,
            ],
            "worker-customer-success",
            &receiver.grpc,
            "grpc",
        ),
        node(
            &["team-worker", "--team", "payments", "--namespace", &payments],
            "worker-payments",
            &receiver.http,
            "http/protobuf",
        ),
    ];
    let ticket = tasker_example_customer_success::request::example_ticket(json!({ "ticket_id": "TKT-7" }));
    let submitted = stack
        .client
        .submit(TaskRequest::new(&support, "process_refund", ticket))
        .await
        .unwrap();
    let parent_id = submitted.task_id.to_string();
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(60)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    let child_id = report
        .steps
        .iter()
        .find_map(|s| s.child_task_id)
        .expect("a step with a child task")
        .to_string();
    for p in &mut processes {
        stop(p).await;
    }
    stack.stop().await;
    tasker_e2e::delete_namespaces(&[&support, &payments], &["customer_success", "payments"]).await;
    let spans = parse(&receiver.log().await);

    let of = |task: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.attributes.get("tasker.task.id").map(String::as_str) == Some(task))
            .collect()
    };
    let (parent_spans, child_spans) = (of(&parent_id), of(&child_id));
    assert!(
        !parent_spans.is_empty() && !child_spans.is_empty(),
        "spans of both tasks"
    );
    let traces: BTreeSet<&str> = parent_spans
        .iter()
        .chain(&child_spans)
        .map(|s| s.trace.as_str())
        .collect();
    assert_eq!(traces.len(), 1, "parent and child in one trace: {traces:?}");

    // The parent's worker started the child, in a producer span that names it.
    let start = spans
        .iter()
        .find(|s| s.attributes.get("tasker.child_task.id") == Some(&child_id))
        .expect("a span that starts the child");
    assert_eq!(
        (start.kind.as_str(), start.service.as_str()),
        ("SPAN_KIND_PRODUCER", "worker-customer-success")
    );
    assert_eq!(start.attributes["tasker.task.id"], parent_id);
    assert_eq!(start.name, format!("start child {payments}/process_refund"));
    // The child's coordinator accepted it under that span.
    let accept = child_spans
        .iter()
        .find(|s| s.name == "accept task")
        .expect("the child's accept span");
    assert_eq!(accept.parent, start.id);
    // The child's steps ran on the payments worker, in the same trace.
    assert!(
        child_spans
            .iter()
            .any(|s| s.name.starts_with("process ") && s.service == "worker-payments"),
        "{child_spans:#?}"
    );
    let step = parent_spans
        .iter()
        .find(|s| s.name == "process execute_refund_workflow")
        .expect("the parent step's span");
    assert_eq!(step.attributes["tasker.step.outcome"], "waiting_for_child");
    std::fs::remove_dir_all(&dir).ok();
}
