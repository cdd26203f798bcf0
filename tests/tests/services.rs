//! Steps routed by handler: several services, each its own workers, serve
//! one namespace together; each receives only its own callables' steps; a
//! step whose callable no service serves waits, spending no attempt, and
//! runs once a worker declares it, as does a step whose service's only
//! worker dies mid-step.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tasker_coordinator::Store;
use tasker_e2e::process::{Process, runs_in_metrics};
use tasker_e2e::{
    Recorder, Stack, amqp_url, eventually, redis_url, registration_template, template, unique, worker_config,
};
use tasker_example_microservices::Service;
use tasker_protocol::topology;
use tasker_protocol::{StepState, TaskFinished, TaskRequest, TaskStatus};
use tasker_runtime::broker::Broker;
use tasker_worker::Worker;
use tokio_util::sync::CancellationToken;

/// A worker of `service`, running a recorder's handler for each of
/// `callables`.
fn service_worker(
    ns: &str,
    service: &str,
    callables: &[&str],
    recorder: &Recorder,
    delay: Duration,
) -> Worker {
    let mut config = worker_config(4);
    config.service = service.to_owned();
    let mut worker = Worker::new(config).namespace(ns);
    for callable in callables {
        worker = worker.handler(*callable, recorder.ok(delay));
    }
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_services_serve_the_diamond_each_receiving_only_its_own_steps() {
    let ns = unique("four_services");
    let recorders: Vec<(Service, Recorder)> = Service::ALL
        .into_iter()
        .map(|s| (s, Recorder::default()))
        .collect();
    let workers = recorders
        .iter()
        .map(|(service, recorder)| {
            service_worker(
                &ns,
                service.name(),
                service.callables(),
                recorder,
                Duration::from_millis(200),
            )
        })
        .collect();
    let stack = Stack::start(vec![registration_template(&ns)], 1, workers)
        .await
        .unwrap();
    let report = stack
        .run(
            &ns,
            "user_registration",
            json!({ "user_info": { "email": "jane@example.com", "name": "Jane", "plan": "pro" } }),
        )
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    let template = registration_template(&ns);
    for (service, recorder) in &recorders {
        let runs = recorder.runs();
        let own: Vec<&str> = template
            .steps
            .iter()
            .filter(|s| service.callables().contains(&s.callable.as_str()))
            .map(|s| s.name.as_str())
            .collect();
        // Each process received its own callables' steps, once each, and
        // nothing else.
        let mut ran: Vec<&str> = runs.iter().map(|r| r.step.as_str()).collect();
        ran.sort_unstable();
        let mut expected = own.clone();
        expected.sort_unstable();
        assert_eq!(ran, expected, "service {}", service.name());
    }
    // Billing and preferences, in two processes, ran at the same time.
    let run_of = |service: Service, step: &str| {
        let (_, recorder) = recorders.iter().find(|(s, _)| *s == service).unwrap();
        recorder.runs_of(report.task_id, step).pop().unwrap()
    };
    let billing = run_of(Service::Billing, "setup_billing_profile");
    let preferences = run_of(Service::Preferences, "initialize_preferences");
    assert!(
        billing.started < preferences.finished && preferences.started < billing.finished,
        "billing and preferences did not overlap"
    );
    // The join ran once, after both.
    let join = run_of(Service::Notifications, "send_welcome_sequence");
    assert!(join.started >= billing.finished && join.started >= preferences.finished);
    stack.stop().await;
}

/// A diamond whose two branches are served by two services.
fn two_service_diamond(ns: &str) -> tasker_protocol::TaskTemplate {
    template(&format!(
        "name: split\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: start\n    handler: {{ callable: Here::Start }}\n\
         \x20 - name: ours\n    handler: {{ callable: Here::Ours }}\n    dependencies: [start]\n\
         \x20 - name: theirs\n    handler: {{ callable: There::Theirs }}\n    dependencies: [start]\n\
         \x20 - name: join\n    handler: {{ callable: Here::Join }}\n    dependencies: [ours, theirs]\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_no_service_serves_waits_without_spending_an_attempt_and_runs_once_one_does() {
    let ns = unique("no_worker");
    let here = Recorder::default();
    let worker = service_worker(
        &ns,
        "here",
        &["Here::Start", "Here::Ours", "Here::Join"],
        &here,
        Duration::ZERO,
    );
    let stack = Stack::start(vec![two_service_diamond(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "split", json!({})))
        .await
        .unwrap();
    let task_id = submitted.task_id;
    let store = Store::connect(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap();
    // `theirs` waits for a worker; `ours` ran meanwhile.
    eventually("theirs waiting for a worker", || {
        let store = store.clone();
        async move {
            let Ok(Some(task)) = store.task(task_id).await else {
                return false;
            };
            task.steps[2].waiting_for_worker.as_deref() == Some("There::Theirs")
                && task.steps[1].state == StepState::Completed
        }
    })
    .await;
    let task = store.task(task_id).await.unwrap().unwrap();
    assert_eq!(
        (task.steps[2].state, task.steps[2].attempts),
        (StepState::Enqueued, 1)
    );
    assert!(here.runs_of(task_id, "theirs").is_empty());
    let status = task.report();
    assert_eq!(
        status.steps[2].waiting_for_worker.as_deref(),
        Some("There::Theirs")
    );
    // Still waiting a while later: no lease ran out, no attempt was spent.
    // The coordinator tried it again each second, and said once that it
    // began to wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let task = store.task(task_id).await.unwrap().unwrap();
    assert_eq!(
        (task.steps[2].state, task.steps[2].attempts),
        (StepState::Enqueued, 1)
    );
    assert_eq!(task.steps[2].waiting_for_worker.as_deref(), Some("There::Theirs"));
    let began_waiting = tasker_runtime::metrics::global()
        .steps_without_worker
        .get_or_create(&tasker_runtime::metrics::callable(&ns, "There::Theirs"))
        .get();
    assert_eq!(began_waiting, 1, "one step began to wait for a worker, once");

    // The service that serves it starts: the step runs, the task completes.
    let there = Recorder::default();
    let shutdown = CancellationToken::new();
    let worker = service_worker(&ns, "there", &["There::Theirs"], &there, Duration::ZERO);
    let run = shutdown.clone();
    let handle = tokio::spawn(async move { worker.run(run).await.unwrap() });
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    assert_eq!(report.steps[2].attempts, 1, "waiting spent no attempt");
    assert!(report.steps[2].waiting_for_worker.is_none());
    assert_eq!(there.runs_of(task_id, "theirs").len(), 1);
    // The other service never received it.
    assert!(here.runs_of(task_id, "theirs").is_empty());
    assert_eq!(here.runs_of(task_id, "join").len(), 1);
    shutdown.cancel();
    handle.await.unwrap();
    stack.stop().await;
    tasker_e2e::delete_namespaces(&[&ns], &["there"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_task_cancels_its_step_that_waits_for_a_worker() {
    let ns = unique("cancel_waiting");
    let here = Recorder::default();
    let worker = service_worker(
        &ns,
        "here",
        &["Here::Start", "Here::Ours", "Here::Join"],
        &here,
        Duration::ZERO,
    );
    let stack = Stack::start(vec![two_service_diamond(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "split", json!({})))
        .await
        .unwrap();
    let task_id = submitted.task_id;
    let store = Store::connect(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap();
    eventually("theirs waiting for a worker", || {
        let store = store.clone();
        async move {
            matches!(store.task(task_id).await, Ok(Some(t)) if t.steps[2].waiting_for_worker.is_some()
                && t.steps[1].state == StepState::Completed)
        }
    })
    .await;
    let command = tasker_protocol::TaskCommand {
        protocol_version: tasker_protocol::PROTOCOL_VERSION,
        task_id,
        action: tasker_protocol::TaskAction::Cancel,
    };
    let reply = stack
        .client
        .command(&ns, &command)
        .await
        .unwrap()
        .wait(Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(&reply, tasker_worker::Reply::Command(r) if r.accepted),
        "{reply:?}"
    );
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(20)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Cancelled, "{report:#?}");
    assert_eq!(report.steps[2].state, StepState::Cancelled);
    stack.stop().await;
}

/// The `chaos-node` binary, which runs the Rust services in processes.
fn node() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_two_of_them_python_serve_the_diamond() {
    let ns = unique("four_processes");
    let latency = Duration::from_millis(300);
    let processes = vec![
        Process::rust_microservice(node(), &ns, "user", latency),
        Process::python_microservice(&ns, "billing", latency),
        Process::rust_microservice(node(), &ns, "preferences", latency),
        Process::python_microservice(&ns, "notifications", latency),
    ];
    let services = ["user", "billing", "preferences", "notifications"];
    let report = registration_through(&ns, services.iter().copied().zip(processes).collect()).await;
    let languages = step_languages(&report);
    assert_eq!(
        languages,
        [
            "create_user_account: rust",
            "initialize_preferences: rust",
            "send_welcome_sequence: python",
            "setup_billing_profile: python",
            "update_user_status: rust",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_in_four_languages_serve_the_diamond() {
    let ns = unique("four_languages");
    let latency = Duration::from_millis(300);
    let processes = vec![
        Process::ruby_microservice(&ns, "accounts", latency),
        Process::python_microservice(&ns, "billing", latency),
        Process::typescript_microservice(&ns, "preferences", latency),
        Process::rust_microservice(node(), &ns, "notifications", latency),
        Process::rust_microservice(node(), &ns, "status", latency),
    ];
    let services = ["accounts", "billing", "preferences", "notifications", "status"];
    let report = registration_through(&ns, services.iter().copied().zip(processes).collect()).await;
    assert_eq!(
        step_languages(&report),
        [
            "create_user_account: ruby",
            "initialize_preferences: typescript",
            "send_welcome_sequence: rust",
            "setup_billing_profile: python",
            "update_user_status: rust",
        ]
    );
    // Every language wrote the same result fields as the Rust handlers.
    let result = |name: &str| -> serde_json::Value {
        let step = report.steps.iter().find(|s| s.name == name).unwrap();
        serde_json::from_str(step.result.as_ref().unwrap().get()).unwrap()
    };
    let account = result("create_user_account");
    assert_eq!(account["email"], "jane@example.com");
    assert_eq!(account["plan"], "pro");
    assert!(
        account["user_id"].as_str().unwrap().starts_with("usr_"),
        "{account}"
    );
    let billing = result("setup_billing_profile");
    assert_eq!(billing["trial_days"], 14);
    assert_eq!(billing["user_id"], account["user_id"]);
    let preferences = result("initialize_preferences");
    assert_eq!(preferences["preferences"]["notifications"]["push"], true);
    let welcome = result("send_welcome_sequence");
    assert_eq!(welcome["messages_sent"], 3, "{welcome}");
    assert_eq!(result("update_user_status")["status"], "active");
}

/// Runs one registration through `processes`, each `(service, process)`
/// serving one service of the microservices example on `ns`, then checks
/// that each process ran its own service's steps once each and no other,
/// that billing and preferences ran at the same time, and the join after
/// both, once. Deletes the namespace's queues at the end.
async fn registration_through(ns: &str, mut processes: Vec<(&str, Process)>) -> TaskFinished {
    let stack = Stack::start(vec![registration_template(ns)], 1, vec![])
        .await
        .unwrap();
    for (_, process) in &mut processes {
        process.ready().await;
    }
    let report = stack
        .run(
            ns,
            "user_registration",
            json!({ "user_info": { "email": "jane@example.com", "name": "Jane", "plan": "pro" } }),
        )
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");

    let template = registration_template(ns);
    for (service, process) in &processes {
        let metrics = process.metrics().await;
        let own = Service::named(service).unwrap().callables();
        for step in &template.steps {
            let expected = u64::from(own.contains(&step.callable.as_str()));
            assert_eq!(
                runs_in_metrics(&metrics, ns, &step.name),
                expected,
                "{} ran {} this many times",
                process.name,
                step.name
            );
        }
    }
    let step = |name: &str| report.steps.iter().find(|s| s.name == name).unwrap();
    let (billing, preferences) = (step("setup_billing_profile"), step("initialize_preferences"));
    let (b0, b1) = (billing.started_at.unwrap(), billing.finished_at.unwrap());
    let (p0, p1) = (preferences.started_at.unwrap(), preferences.finished_at.unwrap());
    assert!(
        b0 < p1 && p0 < b1,
        "billing {b0}..{b1} and preferences {p0}..{p1} did not overlap"
    );
    let join = step("send_welcome_sequence");
    assert_eq!(join.attempts, 1);
    assert!(join.started_at.unwrap() >= b1.max(p1));
    stack.stop().await;
    let services: Vec<&str> = processes.iter().map(|(service, _)| *service).collect();
    tasker_e2e::delete_namespaces(&[ns], &services).await;
    report
}

/// `<step>: <language>` for each step, with the `language` its result
/// names, by step name.
fn step_languages(report: &TaskFinished) -> Vec<String> {
    let mut languages: Vec<String> = report
        .steps
        .iter()
        .map(|step| {
            let result = step.result.as_ref().map_or("null", |r| r.get());
            let result: serde_json::Value = serde_json::from_str(result).unwrap();
            format!(
                "{}: {}",
                step.name,
                result["language"].as_str().unwrap_or("(none)")
            )
        })
        .collect();
    languages.sort();
    languages
}

/// A chain whose middle step another service serves, with a timeout.
fn chain_through_another_service(ns: &str) -> tasker_protocol::TaskTemplate {
    template(&format!(
        "name: chain\nnamespace_name: {ns}\nversion: 1.0.0\nsteps:\n\
         \x20 - name: start\n    handler: {{ callable: Here::Start }}\n\
         \x20 - name: slow\n    handler: {{ callable: There::Slow }}\n    dependencies: [start]\n    timeout_seconds: 2\n\
         \x20 - name: end\n    handler: {{ callable: Here::End }}\n    dependencies: [slow]\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_only_worker_is_killed_mid_step_waits_for_the_next_without_spending_an_attempt() {
    let ns = unique("killed_worker");
    let here = Recorder::default();
    let worker = service_worker(&ns, "here", &["Here::Start", "Here::End"], &here, Duration::ZERO);
    let stack = Stack::start(vec![chain_through_another_service(&ns)], 1, vec![worker])
        .await
        .unwrap();
    let broker = Broker::connect(&amqp_url(), "test-killed-worker").await.unwrap();
    let queue = topology::service_queue(&ns, "there");
    let consumers = || async {
        broker
            .queue_counts(&queue)
            .await
            .unwrap()
            .map(|q| (q.ready, q.consumers))
    };
    let mut there = Process::sleeper(node(), &ns, "there", "There::Slow", Duration::from_millis(1500));
    for _ in 0..300 {
        if consumers().await.is_some_and(|(_, c)| c == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submitted = stack
        .client
        .submit(TaskRequest::new(&ns, "chain", json!({})))
        .await
        .unwrap();
    let task_id = submitted.task_id;
    let store = Store::connect(&redis_url(), Duration::from_secs(60))
        .await
        .unwrap();
    // The step is out, and the queue holds no ready message: the sleeper
    // has it, mid-step.
    eventually("slow delivered to its worker", || {
        let store = store.clone();
        async move {
            matches!(store.task(task_id).await, Ok(Some(t)) if t.steps[0].state == StepState::Completed)
                && consumers().await == Some((0, 1))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    there.kill();

    // The message is back in the service's queue, which no one consumes;
    // once the lease (2 s and the margin) runs out, the step waits for a
    // worker, at its first attempt, and shows so.
    eventually("the message back in the queue, no consumer", || async {
        consumers().await == Some((1, 0))
    })
    .await;
    eventually("slow waiting for a worker", || {
        let store = store.clone();
        async move {
            matches!(store.task(task_id).await, Ok(Some(t))
                if t.steps[1].waiting_for_worker.as_deref() == Some("There::Slow"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let task = store.task(task_id).await.unwrap().unwrap();
    let slow = &task.report().steps[1];
    assert_eq!((slow.state, slow.attempts), (StepState::Enqueued, 1), "{slow:#?}");
    assert!(slow.error.is_none(), "no timeout was recorded: {slow:#?}");
    assert_eq!(slow.waiting_for_worker.as_deref(), Some("There::Slow"));

    // A worker of the service starts: it runs the message, the task ends.
    let _there = Process::sleeper(node(), &ns, "there", "There::Slow", Duration::from_millis(200));
    let report = tasker_e2e::finished(submitted.wait(Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(report.status, TaskStatus::Complete, "{report:#?}");
    assert_eq!(report.steps[1].attempts, 1, "{report:#?}");
    assert!(report.steps[1].error.is_none(), "{report:#?}");
    assert!(report.steps[1].waiting_for_worker.is_none());
    let task = store.task(task_id).await.unwrap().unwrap();
    assert!(
        task.steps[1].waiting_for_worker.is_none(),
        "the store forgot the wait"
    );
    broker.close().await;
    stack.stop().await;
    tasker_e2e::delete_namespaces(&[&ns], &["there"]).await;
}
