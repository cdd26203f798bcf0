//! The worker conformance kit (`tests/conformance/`), run against the Rust
//! SDK: each scenario's messages go to a Rust worker's service queue, and
//! what it publishes or dead-letters is checked as the kit's README says.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use serde_json::{Map, Value, json};
use tasker_e2e::{amqp_url, unique, worker_config};
use tasker_protocol::topology::{self, headers, message_type};
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::publisher::Outgoing;
use tasker_worker::{ChildTask, StepContext, StepError, StepHandler, Worker};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SERVICE: &str = "conformance";
const WAIT: Duration = Duration::from_secs(15);

fn kit() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/scenarios.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The kit's one handler, driven by the step's `initialization`.
#[derive(Clone, Default)]
struct Conformance {
    runs: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl StepHandler for Conformance {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let init = &ctx.message().initialization;
        let text = |key: &str| {
            init.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match init.get("do").and_then(Value::as_str).unwrap_or("echo") {
            "echo" => {
                let input = match init.get("input").and_then(Value::as_str) {
                    Some(key) => ctx.input_or(key, Value::Null)?,
                    None => Value::Null,
                };
                let dependency = match init.get("dependency").and_then(Value::as_str) {
                    Some(step) => ctx.dependency_result(step)?,
                    None => Value::Null,
                };
                Ok(json!({
                    "input": input,
                    "dependency": dependency,
                    "dependencies": ctx.message().dependencies,
                    "attempt": ctx.attempt(),
                    "idempotency_key": ctx.idempotency_key(),
                }))
            }
            "permanent" => Err(StepError::permanent(text("code"), text("message"))),
            "retryable" => {
                let error = StepError::retryable(text("code"), text("message"));
                Err(match init.get("retry_after").and_then(Value::as_f64) {
                    Some(secs) => error.retry_after(Duration::from_secs_f64(secs)),
                    None => error,
                })
            }
            "sleep" => {
                let secs = init.get("seconds").and_then(Value::as_f64).unwrap_or_default();
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                Ok(json!({}))
            }
            "crash" => panic!("{}", text("message")),
            "child" => {
                let child = ChildTask::new(text("namespace"), text("name"), init["context"].clone());
                ctx.complete_with_child(child).await
            }
            other => panic!("the kit names no action {other:?}"),
        }
    }
}

/// The kit's substitutions: `{task_id}`, `{namespace}` and
/// `{service_queue}` in strings, and `{"$repeat": s, "times": n}` objects.
fn substitute(value: &Value, names: &[(&str, &str)]) -> Value {
    match value {
        Value::String(s) => Value::String(
            names
                .iter()
                .fold(s.clone(), |s, (name, to)| s.replace(&format!("{{{name}}}"), to)),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, names)).collect()),
        Value::Object(map) if map.contains_key("$repeat") => Value::String(
            map["$repeat"]
                .as_str()
                .unwrap()
                .repeat(usize::try_from(map["times"].as_u64().unwrap()).unwrap()),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Objects match field by field (a subset), other values exactly.
fn is_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|got| is_subset(v, got))),
        _ => expected == actual,
    }
}

fn base(namespace: &str, task_id: &str, callable: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "protocol_version": 1,
        "task_id": task_id,
        "namespace": namespace,
        "task_name": "conformance",
        "task_version": "1.0.0",
        "step": "s",
        "callable": callable,
        "attempt": 1,
        "max_attempts": 3,
        "context": {},
        "initialization": {},
        "dependencies": [],
        "dependency_results": {},
    }) else {
        unreachable!()
    };
    map
}

fn header(delivery: &Delivery, name: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}

async fn next(consumer: &mut lapin::Consumer, what: &str) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap()
        .unwrap()
}

async fn run(scenario: &Value, callable: &str) {
    let name = scenario["name"].as_str().unwrap();
    let ns = unique("conf");
    let task_id = Uuid::new_v4().to_string();
    let queue = topology::service_queue(&ns, SERVICE);
    let scenario = substitute(
        scenario,
        &[
            ("task_id", &task_id),
            ("namespace", &ns),
            ("service_queue", &queue),
        ],
    );

    let broker = Broker::connect(&amqp_url(), "test-conformance").await.unwrap();
    let channel = broker.channel().await.unwrap();
    broker.declare_common().await.unwrap();
    let (_, mut results) = broker
        .private_queue(
            &channel,
            Some((topology::EVENTS_EXCHANGE, &topology::step_result_routing_key(&ns))),
            true,
        )
        .await
        .unwrap();
    let (_, mut dead) = broker
        .private_queue(&channel, Some((topology::DEAD_LETTER_EXCHANGE, "")), true)
        .await
        .unwrap();
    broker.declare_requests_exchange().await.unwrap();
    let (_, mut children) = broker
        .private_queue(
            &channel,
            Some((topology::REQUESTS_EXCHANGE, &format!("{ns}_child"))),
            true,
        )
        .await
        .unwrap();
    let publisher = broker.publisher().await.unwrap();

    let handler = Conformance::default();
    let mut config = worker_config(4);
    config.service = SERVICE.to_owned();
    if let Some(limit) = scenario["worker"]["max_message_bytes"].as_u64() {
        config.max_message_bytes = usize::try_from(limit).unwrap();
    }
    let shutdown = CancellationToken::new();
    let worker = Worker::new(config)
        .namespace(&ns)
        .handler(callable, handler.clone());
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker
        .queue_counts(&queue)
        .await
        .unwrap()
        .is_none_or(|c| c.consumers == 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the worker never consumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let deliveries = scenario["deliveries"].as_array().unwrap();
    let expectations = scenario["expect"].as_array().unwrap();
    assert_eq!(deliveries.len(), expectations.len(), "{name}");
    let mut seen: Vec<Value> = Vec::new();
    let mut body = Vec::new();
    for (delivery, expected) in deliveries.iter().zip(expectations) {
        if let Some(raw) = delivery["raw_body"].as_str() {
            body = raw.as_bytes().to_vec();
        } else if let Some(Value::Object(fields)) = delivery.get("step_ready") {
            let mut message = base(&ns, &task_id, callable);
            message.extend(fields.clone());
            for field in delivery["remove"].as_array().into_iter().flatten() {
                message.remove(field.as_str().unwrap());
            }
            body = serde_json::to_vec(&message).unwrap();
        } else {
            assert_eq!(delivery["again"], true, "{name}: {delivery}");
        }
        publisher
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: queue.clone(),
                payload: body.clone(),
                properties: broker::properties(message_type::STEP_READY, None),
                mandatory: true,
            })
            .await
            .unwrap();

        let mut child_task_id = None;
        if let Some(want) = expected.get("child_request") {
            let request = next(&mut children, "child task request").await;
            let got: Value = serde_json::from_slice(&request.data).unwrap();
            assert!(is_subset(want, &got), "{name}: expected {want}, got {got}");
            child_task_id = header(&request, headers::TASK_ID);
            assert!(
                child_task_id.is_some(),
                "{name}: the request has no task id header"
            );
        }
        if let Some(want) = expected.get("result") {
            let got: Value = serde_json::from_slice(&next(&mut results, "step result").await.data).unwrap();
            assert!(is_subset(want, &got), "{name}: expected {want}, got {got}");
            if let Some(id) = &child_task_id {
                assert_eq!(got["child_task_id"].as_str(), Some(id.as_str()), "{name}");
            }
            if let Some(k) = expected["same_as"].as_u64() {
                assert_eq!(got, seen[usize::try_from(k).unwrap()], "{name}");
            }
            seen.push(got);
        } else {
            let want = &expected["dead_letter"];
            let letter = loop {
                let d = next(&mut dead, "dead letter").await;
                if header(&d, headers::DEAD_LETTER_QUEUE).as_deref() == Some(queue.as_str()) {
                    break d;
                }
            };
            assert_eq!(want["original_queue"].as_str(), Some(queue.as_str()), "{name}");
            let reason = header(&letter, headers::DEAD_LETTER_REASON).unwrap_or_default();
            let prefix = format!("{}:", want["reason_prefix"].as_str().unwrap());
            assert!(reason.starts_with(&prefix), "{name}: {reason}");
            if let Some(text) = want["body"].as_str() {
                assert_eq!(letter.data, text.as_bytes(), "{name}");
            }
        }
    }
    if scenario["no_results"] == true {
        let stray = tokio::time::timeout(Duration::from_millis(500), results.next()).await;
        assert!(stray.is_err(), "{name}: a step result was published");
    }
    if let Some(runs) = scenario["handler_runs"].as_u64() {
        assert_eq!(handler.runs.load(Ordering::SeqCst) as u64, runs, "{name}");
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
    broker.delete_namespace(&channel, &ns, &[SERVICE]).await.unwrap();
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_passes_every_scenario_of_the_conformance_kit() {
    let kit = kit();
    let callable = kit["callable"].as_str().unwrap();
    let scenarios = kit["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 12);
    for scenario in scenarios {
        run(scenario, callable).await;
    }
}
