//! Locked down: TLS with client certificates, a user per service that
//! reaches only its own work, the coordinators' Redis user limited to
//! Tasker's keys and commands, and passwords that appear in no log, span,
//! report or metric. Against the servers `deploy/dev servers` starts: TLS
//! listeners on 127.0.0.1:5671 (AMQP) and :6380 (Redis) beside the plain
//! ones, the certificates under `.dev/tls`, and the users of
//! `deploy/dev.d/security.sh` with their passwords under `.dev/secrets`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tasker_e2e::otlp::Receiver;
use tasker_e2e::process::{Language, Process, free_addr};
use tasker_e2e::{dev_file, tasker_cli, unique};

const AMQPS: &str = "127.0.0.1:5671";
const REDISS: &str = "127.0.0.1:6380";

/// The password `deploy/dev` made for `name` (`rabbitmq-<user>`,
/// `redis-<user>`).
fn password(name: &str) -> String {
    std::fs::read_to_string(secret(name)).unwrap().trim().to_owned()
}

fn secret(name: &str) -> PathBuf {
    dev_file(&format!("secrets/{name}"))
}

/// The TLS files for a process, trusting `ca` (`ca.pem`, or `other-ca.pem`
/// for one that must be refused).
fn tls_env(command: &mut Command, ca: &str) {
    command
        .env("TASKER_TLS_CA_FILE", dev_file(&format!("tls/{ca}")))
        .env("TASKER_TLS_CERT_FILE", dev_file("tls/client.pem"))
        .env("TASKER_TLS_KEY_FILE", dev_file("tls/client.key"));
}

/// A namespace the tests' least-privilege users may serve (`lp_…`), with
/// the registration template in a directory of its own for a coordinator.
fn test_namespace(prefix: &str) -> (String, PathBuf) {
    let ns = unique(&format!("lp_{prefix}"));
    let dir = tasker_e2e::registration_templates_dir(&ns);
    (ns, dir)
}

/// `tasker submit` of a registration for `email`, waiting for its report,
/// as the client's user over TLS trusting `ca`.
fn submit(ns: &str, email: &str, ca: &str) -> Output {
    let mut command = Command::new(tasker_cli());
    command
        .args(["submit", ns, "user_registration", "--wait", "--json", "--context"])
        .arg(json!({ "user_info": { "email": email, "name": "Kim", "plan": "pro" } }).to_string())
        .env("TASKER_AMQP_URL", format!("amqps://tasker-client@{AMQPS}/%2f"))
        .env("TASKER_AMQP_PASSWORD", password("rabbitmq-tasker-client"));
    tls_env(&mut command, ca);
    command.output().unwrap()
}

/// The report `tasker submit --json` printed last.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The coordinator, `tasker coordinator`, over TLS to both servers as the
/// coordinators' users, its output to `log`.
fn coordinator(templates: &Path, log: Option<&Path>, setup: impl FnOnce(&mut Command)) -> Process {
    let health = free_addr();
    let mut command = Command::new(tasker_cli());
    command
        .args(["coordinator", "--templates"])
        .arg(templates)
        .args(["--health-addr", &health.to_string()])
        .env(
            "TASKER_AMQP_URL",
            format!("amqps://tasker-coordinator@{AMQPS}/%2f"),
        )
        .env("TASKER_AMQP_PASSWORD_FILE", secret("rabbitmq-tasker-coordinator"))
        .env(
            "TASKER_REDIS_URL",
            format!("rediss://tasker-coordinator@{REDISS}"),
        )
        .env("TASKER_REDIS_PASSWORD_FILE", secret("redis-tasker-coordinator"));
    tls_env(&mut command, "ca.pem");
    if let Some(log) = log {
        to_log(&mut command, log);
    }
    setup(&mut command);
    Process::start("coordinator", command, Some(health))
}

/// Sends what `command` prints to `log`.
fn to_log(command: &mut Command, log: &Path) {
    let file = std::fs::File::create(log).unwrap();
    command.stdout(file.try_clone().unwrap()).stderr(file);
}

/// A worker's settings: its service's own user, its password from a file,
/// no Redis at all.
fn as_service(command: &mut Command, service: &str, url: &str) {
    let user = format!("tasker-test-{service}");
    command
        .env("TASKER_AMQP_URL", url.replace("USER", &user))
        .env("TASKER_AMQP_PASSWORD_FILE", secret(&format!("rabbitmq-{user}")))
        .env_remove("TASKER_REDIS_URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_user_per_service_the_diamond_completes_and_a_wrong_ca_is_refused() {
    let (ns, templates) = test_namespace("tls");
    let node = Path::new(env!("CARGO_BIN_EXE_chaos-node"));
    let mut processes = vec![coordinator(&templates, None, |_| ())];
    for service in ["user", "billing", "preferences", "notifications"] {
        processes.push(Process::microservice(
            Language::Rust(node),
            &ns,
            service,
            Duration::ZERO,
            |command| {
                as_service(command, service, &format!("amqps://USER@{AMQPS}/%2f"));
                tls_env(command, "ca.pem");
            },
        ));
    }
    for process in &mut processes {
        process.ready().await;
    }

    let output = submit(&ns, "kim@example.com", "ca.pem");
    let report = report(&output);
    assert_eq!(report["status"], "complete", "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5, "{report:#}");
    assert!(steps.iter().all(|s| s["state"] == "completed"), "{report:#}");

    let refused = submit(&ns, "kim@example.com", "other-ca.pem");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("TLS handshake") && stderr.contains("TASKER_TLS_CA_FILE"),
        "{stderr}"
    );
    drop(processes);
    tasker_e2e::delete_namespaces(&[&ns], &["user", "billing", "preferences", "notifications"]).await;
}

/// A connection to the plain listener as `user`.
async fn connect_as(user: &str) -> Connection {
    let url = format!(
        "amqp://{user}:{}@127.0.0.1:5672/%2f",
        password(&format!("rabbitmq-{user}"))
    );
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"))
}

/// Whether the broker refused `outcome` as not allowed (ACCESS_REFUSED).
fn refused<T: std::fmt::Debug>(outcome: Result<T, lapin::Error>) -> bool {
    match outcome {
        Err(e) => e.to_string().contains("ACCESS_REFUSED") || e.to_string().contains("ACCESS-REFUSED"),
        Ok(value) => panic!("allowed: {value:?}"),
    }
}

/// Publishes to tasker.events with `key`, waiting for the broker's answer.
async fn publish_event(connection: &Connection, key: &str) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let confirm = channel
        .basic_publish(
            "tasker.events".into(),
            key.into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await?;
    confirm.await?;
    // A refused publish closes the channel; a round trip makes sure of it.
    channel
        .basic_qos(1, lapin::options::BasicQosOptions::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_billing_workers_credentials_reach_only_billings_own_work() {
    // What the coordinators declare, as on a machine where none ran yet.
    let coordinator = tasker_runtime::broker::Broker::connect(&tasker_e2e::amqp_url(), "test-setup")
        .await
        .unwrap();
    coordinator.declare_common().await.unwrap();
    coordinator.declare_namespace("microservices").await.unwrap();
    coordinator.close().await;
    let billing = connect_as("tasker-billing").await;
    // Its own queue: declared, with the arguments of every Tasker queue,
    // and consumed.
    let own = billing.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        tasker_protocol::topology::QUEUE_TYPE_ARGUMENT.into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    arguments.insert(
        tasker_protocol::topology::DELIVERY_LIMIT_ARGUMENT.into(),
        lapin::types::AMQPValue::LongUInt(tasker_protocol::topology::DELIVERY_LIMIT),
    );
    own.queue_declare(
        "tasker.steps.microservices.billing".into(),
        QueueDeclareOptions::durable(),
        arguments,
    )
    .await
    .expect("billing declares its own queue");
    let consumer = own
        .basic_consume(
            "tasker.steps.microservices.billing".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("billing consumes its own queue");
    own.basic_cancel(consumer.tag(), lapin::options::BasicCancelOptions::default())
        .await
        .unwrap();

    // Another service's steps.
    let channel = billing.create_channel().await.unwrap();
    assert!(refused(
        channel
            .basic_consume(
                "tasker.steps.microservices.preferences".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    ));
    // Binding its queue to what reaches other namespaces: the steps
    // exchange itself, or another namespace's.
    for (exchange, key) in [
        ("tasker.steps", "payments/Payments::ProcessRefund"),
        ("tasker.steps.payments", "payments/Payments::ProcessRefund"),
    ] {
        let channel = billing.create_channel().await.unwrap();
        assert!(
            refused(
                channel
                    .queue_bind(
                        "tasker.steps.microservices.billing".into(),
                        exchange.into(),
                        key.into(),
                        lapin::options::QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            ),
            "{exchange}"
        );
    }
    // Results for another namespace, and a task-finished event.
    assert!(refused(publish_event(&billing, "step.result.payments").await));
    assert!(refused(
        publish_event(&billing, "task.finished.microservices.user_registration").await
    ));
    // The namespace's results queue: neither read nor deleted.
    let channel = billing.create_channel().await.unwrap();
    assert!(refused(
        channel
            .queue_delete(
                "tasker.results.microservices".into(),
                QueueDeleteOptions::default()
            )
            .await
    ));
    // What it may publish: results of its own namespace.
    publish_event(&billing, "step.result.microservices")
        .await
        .expect("billing publishes its namespace's results");
    let _ = billing.close(200, "done".into()).await;
}

#[tokio::test]
async fn the_coordinators_redis_user_may_use_only_taskers_keys_and_commands() {
    let url = |user: &str| {
        format!(
            "redis://{user}:{}@127.0.0.1:6379",
            password(&format!("redis-{user}"))
        )
    };
    let client = redis::Client::open(url("tasker-coordinator")).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("tasker:{{test}}:{}", unique("acl"));
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("f")
        .arg(1)
        .query_async(&mut redis)
        .await
        .expect("a Tasker key");
    let noperm = |outcome: redis::RedisResult<Value>| {
        let e = outcome.expect_err("allowed");
        assert!(e.to_string().to_uppercase().contains("NOPERM"), "{e}");
    };
    let query = |name: &str, args: &[&str]| {
        let mut cmd = redis::cmd(name);
        for a in args {
            cmd.arg(*a);
        }
        cmd
    };
    for (name, args) in [
        ("SET", vec!["elsewhere:key", "1"]),
        ("FLUSHALL", vec![]),
        ("CONFIG", vec!["GET", "*"]),
        ("KEYS", vec!["*"]),
        ("SHUTDOWN", vec![]),
        ("PUBLISH", vec!["channel", "x"]),
    ] {
        let cmd = query(name, &args);
        noperm(
            cmd.query_async::<redis::Value>(&mut redis)
                .await
                .map(|v| json!(format!("{v:?}"))),
        );
    }
    // The operator's user reads Tasker's keys, and writes nothing.
    let operator = redis::Client::open(url("tasker-operator")).unwrap();
    let mut operator = operator.get_multiplexed_async_connection().await.unwrap();
    let read: Option<i64> = redis::cmd("HGET")
        .arg(&key)
        .arg("f")
        .query_async(&mut operator)
        .await
        .unwrap();
    assert_eq!(read, Some(1));
    noperm(
        query("DEL", &[&key])
            .query_async::<redis::Value>(&mut operator)
            .await
            .map(|v| json!(format!("{v:?}"))),
    );
    // Its scripts run with its rights: one that writes is refused.
    let script = query("EVAL", &["return redis.call('DEL', KEYS[1])", "1", &key])
        .query_async::<redis::Value>(&mut operator)
        .await
        .expect_err("a script of the operator's deleted a key");
    assert!(script.to_string().contains("can't run this command"), "{script}");
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut redis).await.unwrap();
    // A worker's user has no Redis user at all.
    let worker = format!(
        "redis://tasker-billing:{}@127.0.0.1:6379",
        password("rabbitmq-tasker-billing")
    );
    let refused = redis::Client::open(worker)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect_err("a worker logs in to Redis");
    assert_eq!(
        refused.kind(),
        redis::ErrorKind::AuthenticationFailed,
        "{refused}"
    );
}

/// Stops `process` with SIGTERM, as an orchestrator would, so that it
/// flushes its spans; SIGKILL after 20 s.
fn stop(mut process: Process) {
    process.terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_any_log_span_report_or_metric() {
    let (ns, templates) = test_namespace("secrets");
    let receiver = Receiver::start();
    let logs = std::env::temp_dir().join(unique("secret-logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let traced = |command: &mut Command, service: &str| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_SERVICE_NAME", service)
            .env("RUST_LOG", "debug,lapin=info,h2=info,hyper=info,tower=info")
            .env("TASKER_LOG_LEVEL", "DEBUG");
    };
    let node = Path::new(env!("CARGO_BIN_EXE_chaos-node"));
    let wrong = "not-the-password-5d0b7e";
    // Every password in play: the services', the coordinators', the
    // client's, the operator's, and a wrong one that a worker tries.
    let mut secrets = vec![wrong.to_owned()];
    for name in [
        "rabbitmq-tasker-coordinator",
        "redis-tasker-coordinator",
        "redis-tasker-operator",
        "rabbitmq-tasker-client",
    ] {
        secrets.push(password(name));
    }

    let log = |name: &str| logs.join(format!("{name}.log"));
    let mut processes = vec![coordinator(&templates, Some(&log("coordinator")), |c| {
        traced(c, "coordinator");
        // The Redis password inline, the AMQP one from its file.
        c.env_remove("TASKER_REDIS_PASSWORD_FILE")
            .env("TASKER_REDIS_PASSWORD", password("redis-tasker-coordinator"));
    })];
    // The polyglot layout: every SDK, each service its own user, one over TLS.
    let services = [
        ("accounts", Language::Ruby),
        ("preferences", Language::TypeScript),
        ("notifications", Language::Rust(node)),
        ("status", Language::Rust(node)),
    ];
    for (service, language) in services {
        secrets.push(password(&format!("rabbitmq-tasker-test-{service}")));
        processes.push(Process::microservice(
            language,
            &ns,
            service,
            Duration::ZERO,
            |c| {
                if service == "notifications" {
                    as_service(c, service, &format!("amqps://USER@{AMQPS}/%2f"));
                    tls_env(c, "ca.pem");
                } else {
                    as_service(c, service, "amqp://USER@127.0.0.1:5672/%2f");
                }
                traced(c, service);
                to_log(c, &log(service));
            },
        ));
    }
    secrets.push(password("rabbitmq-tasker-test-billing"));
    let billing = |down: bool, name: &str| {
        Process::microservice(Language::Python, &ns, "billing", Duration::ZERO, |c| {
            as_service(c, "billing", "amqp://USER@127.0.0.1:5672/%2f");
            // Its password inline, the others' from files.
            c.env_remove("TASKER_AMQP_PASSWORD_FILE")
                .env("TASKER_AMQP_PASSWORD", password("rabbitmq-tasker-test-billing"))
                .env("TASKER_DEMO_BILLING_DOWN", if down { "true" } else { "false" });
            traced(c, "billing");
            to_log(c, &log(name));
        })
    };
    let mut down = billing(true, "billing-down");
    // A worker of status with a wrong password: refused, it stops.
    let refused_worker = Process::microservice(Language::Rust(node), &ns, "status", Duration::ZERO, |c| {
        c.env("TASKER_AMQP_URL", "amqp://tasker-test-status@127.0.0.1:5672/%2f")
            .env("TASKER_AMQP_PASSWORD", wrong)
            .env_remove("TASKER_REDIS_URL");
        to_log(c, &log("wrong-password"));
    });
    for process in processes.iter_mut().chain([&mut down]) {
        process.ready().await;
    }

    // Billing down: its step fails retryably until its attempts run out.
    let failed = report(&submit(&ns, "ann@example.com", "ca.pem"));
    assert_eq!(failed["status"], "failed", "{failed:#}");
    stop(down);
    let mut up = billing(false, "billing-up");
    up.ready().await;
    let complete = report(&submit(&ns, "kim@example.com", "ca.pem"));
    assert_eq!(complete["status"], "complete", "{complete:#}");
    // A refusal: the email is not one.
    let invalid = report(&submit(&ns, "not-an-email", "ca.pem"));
    assert_eq!(invalid["status"], "failed", "{invalid:#}");

    // What an operator sees: `tasker status` (Redis, as the operator), and
    // every process's metrics.
    let mut status = Command::new(tasker_cli());
    status
        .args(["status", complete["task_id"].as_str().unwrap()])
        .env("TASKER_REDIS_URL", format!("rediss://tasker-operator@{REDISS}"))
        .env("TASKER_REDIS_PASSWORD_FILE", secret("redis-tasker-operator"))
        .stdin(Stdio::null());
    tls_env(&mut status, "ca.pem");
    let status = status.output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut seen = vec![
        (
            "tasker status".to_owned(),
            String::from_utf8_lossy(&status.stdout).into_owned(),
        ),
        ("the reports".to_owned(), format!("{failed}{complete}{invalid}")),
    ];
    for process in processes.iter().chain([&up]) {
        seen.push((format!("{}'s /metrics", process.name), process.metrics().await));
    }

    for process in processes.into_iter().chain([up, refused_worker]) {
        stop(process);
    }
    let spans = receiver.log().await;
    for task in [&failed, &complete, &invalid] {
        let id = task["task_id"].as_str().unwrap();
        assert!(spans.contains(id), "the receiver got no span of task {id}");
    }
    seen.push(("the trace receiver".to_owned(), spans));
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.trim().is_empty(), "{} is empty", path.display());
        seen.push((path.display().to_string(), text));
    }
    let refusals = &seen
        .iter()
        .find(|(name, _)| name.ends_with("wrong-password.log"))
        .unwrap()
        .1;
    assert!(
        refusals.contains("refused"),
        "the worker with a wrong password says it was refused: {refusals}"
    );
    for (where_, text) in &seen {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a password appears in {where_}");
        }
    }
    tasker_e2e::delete_namespaces(
        &[&ns],
        &["accounts", "billing", "preferences", "notifications", "status"],
    )
    .await;
}
