//! `tasker`: run the coordinator, submit tasks, inspect them, and check
//! templates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tasker_coordinator::{CoordinatorConfig, Store, graph, report, templates};
use tasker_protocol::{TaskAction, TaskCommand, TaskRequest, TaskStatus, TaskTemplate};
use tasker_worker::{Client, Reply};
use tracing::Instrument;
use uuid::Uuid;

/// jemalloc rather than the system allocator: every delivery's task is a
/// few kilobytes, too large for glibc's per-thread caches, and in the
/// benchmark jemalloc cut the CPU per step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `println!` that hands a closed stdout back as an error (`tasker list |
/// head`): `main` then ends quietly instead of panicking.
macro_rules! outln {
    () => {
        std::io::Write::write_all(&mut std::io::stdout(), b"\n")?
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` that hands a closed stdout back as an error, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*))?
    };
}

/// Exit code of `submit --wait` when the task failed.
const EXIT_TASK_FAILED: u8 = 3;
/// Exit code of `submit` when the coordinator rejected the request.
const EXIT_REJECTED: u8 = 4;
/// Exit code of `status` when no such task exists, and of `templates graph`
/// when no such template does.
const EXIT_NOT_FOUND: u8 = 5;

#[derive(Parser)]
#[command(name = "tasker", version, about = "Run and inspect Tasker workflows", after_help = EXIT_CODES)]
struct Cli {
    /// RabbitMQ URL.
    #[arg(long, global = true, env = "TASKER_AMQP_URL", default_value = tasker_worker::defaults::AMQP_URL, hide_env_values = true)]
    amqp_url: String,
    /// Redis URL.
    #[arg(long, global = true, env = "TASKER_REDIS_URL", default_value = tasker_coordinator::coordinator::DEFAULT_REDIS_URL, hide_env_values = true)]
    redis_url: String,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success; 1 error; 2 bad usage; 3 the task failed or was cancelled; 4 the request or command was refused; 5 no such task or template.";

#[derive(Subcommand)]
enum Command {
    /// Run a coordinator.
    #[command(after_help = "Example:\n  tasker coordinator --templates templates/")]
    Coordinator {
        /// Directory of task templates, searched recursively.
        #[arg(long, env = "TASKER_TEMPLATES", default_value = "templates")]
        templates: PathBuf,
        /// Deliveries processed at once, per input queue.
        #[arg(long, default_value_t = 256)]
        prefetch: u16,
        /// Days a finished task stays in Redis.
        #[arg(long, default_value_t = 7.0)]
        retention_days: f64,
        /// Serve /healthz and /readyz on this address, e.g. 0.0.0.0:8080.
        #[arg(long, env = "TASKER_HEALTH_ADDR")]
        health_addr: Option<std::net::SocketAddr>,
    },
    /// Submit a task.
    #[command(
        after_help = "Example:\n  tasker submit microservices user_registration \\\n    --context '{\"user_info\":{\"email\":\"a@b.io\",\"name\":\"A\",\"plan\":\"pro\"}}' --wait --json"
    )]
    Submit {
        /// The template's namespace.
        namespace: String,
        /// The template's name.
        name: String,
        /// The task's input, a JSON object.
        #[arg(long, default_value = "{}")]
        context: String,
        /// A template version; the highest loaded one when absent.
        #[arg(long)]
        version: Option<String>,
        /// Requests with the same key create one task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for the task to finish and print its report.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a task's steps.
    #[command(after_help = "Example:\n  tasker status 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13")]
    Status {
        /// The task's id.
        task_id: Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry a failed task from its failed steps, keeping every completed
    /// result: failed steps and the steps they blocked go back to pending
    /// with a fresh budget of attempts, and the task runs on.
    #[command(
        after_help = "Examples:\n  tasker retry 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker retry 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --step setup_billing_profile --wait\n\nRefused (exit code 4) for a task that is complete or still running."
    )]
    Retry {
        /// The task's id.
        task_id: Uuid,
        /// Retry only this failed step (and what it blocked).
        #[arg(long)]
        step: Option<String>,
        /// Then wait for the task to end and print its steps.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the coordinator's answer, and with --wait for the task.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running task: no step starts any more, the steps running
    /// now finish, and the task ends cancelled.
    #[command(
        after_help = "Examples:\n  tasker cancel 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker cancel 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --wait\n\nRefused (exit code 4) for a task that has ended."
    )]
    Cancel {
        /// The task's id.
        task_id: Uuid,
        /// Then wait for the running steps and print the task's steps.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the coordinator's answer, and with --wait for the task.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Complete a failed step by hand with a result; the steps it blocked
    /// then run.
    #[command(
        after_help = "Example:\n  tasker resolve 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --step setup_billing_profile \\\n    --result '{\"billing_id\":\"bill_manual\",\"plan\":\"pro\"}' --wait"
    )]
    Resolve {
        /// The task's id.
        task_id: Uuid,
        /// The failed step.
        #[arg(long)]
        step: String,
        /// Its result, as JSON.
        #[arg(long)]
        result: String,
        /// Then wait for the task to end and print its steps.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the coordinator's answer, and with --wait for the task.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a task live until it ends: its progress, its DAG with each
    /// step's state, and the step table.
    #[command(
        after_help = "Examples:\n  tasker watch 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13\n  tasker watch 0b6f3c1e-8d2a-4f5e-9c41-7e2b9a0d5f13 --json   # one JSON report per change"
    )]
    Watch {
        /// The task's id.
        task_id: Uuid,
        /// Directory of task templates, for drawing the DAG.
        #[arg(long, env = "TASKER_TEMPLATES", default_value = "templates")]
        templates: PathBuf,
        /// Seconds between looks.
        #[arg(long, default_value_t = 0.5)]
        interval: f64,
        /// Print one JSON report per change instead.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the dead-letter queue, and put messages back on their queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// List recent tasks, newest first.
    #[command(
        after_help = "Examples:\n  tasker list\n  tasker list --namespace microservices --status failed --limit 5\n  tasker list --json"
    )]
    List {
        /// Only tasks of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only tasks with this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// At most this many tasks.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check template files or directories.
    #[command(after_help = "Example:\n  tasker validate templates/")]
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the templates in a directory, or draw one's DAG.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Run the user-registration diamond once and show its timeline.
    #[command(after_help = "Example:\n  tasker demo --email jane@example.com --plan pro")]
    Demo {
        /// The new user's email.
        #[arg(long, default_value = "jane.developer@example.com")]
        email: String,
        /// The new user's name.
        #[arg(long, default_value = "Jane Developer")]
        name: String,
        /// The plan: free, pro or enterprise.
        #[arg(long, default_value = "pro")]
        plan: String,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// List every template and version in the directory.
    #[command(
        after_help = "Examples:\n  tasker templates list\n  tasker templates list --templates deploy/templates --json"
    )]
    List {
        /// Directory of task templates, searched recursively.
        #[arg(long, env = "TASKER_TEMPLATES", default_value = "templates")]
        templates: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw a template's DAG.
    #[command(
        after_help = "Examples:\n  tasker templates graph microservices/user_registration\n  tasker templates graph microservices/user_registration --format dot | dot -Tpng > diamond.png\n  tasker templates graph microservices/user_registration --format svg > diamond.svg\n  tasker templates graph microservices/user_registration --format text"
    )]
    Graph {
        /// The template, as NAMESPACE/NAME.
        template: String,
        /// A version; the highest one when absent.
        #[arg(long)]
        version: Option<String>,
        /// mermaid (for Markdown), dot (Graphviz source), svg (rendered by
        /// Graphviz's `dot`, which must be installed) or text.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        /// Directory of task templates, searched recursively.
        #[arg(long, env = "TASKER_TEMPLATES", default_value = "templates")]
        templates: PathBuf,
        /// Print JSON: the steps, their dependencies, and the drawing.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every parked message with its reason, oldest first.
    #[command(after_help = "Examples:\n  tasker dlq list\n  tasker dlq list --json")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One message in full: its reason, where it came from and its body.
    #[command(after_help = "Example:\n  tasker dlq show 5d2c8a90-1b7e-4f3a-a6d4-0c9e8b7f6a51")]
    Show {
        /// The message id, as `dlq list` shows it.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish a message back to where it was first sent, once its cause
    /// is fixed, and take it off the dead-letter queue.
    #[command(after_help = "Example:\n  tasker dlq replay 5d2c8a90-1b7e-4f3a-a6d4-0c9e8b7f6a51")]
    Replay {
        /// The message id, as `dlq list` shows it.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop every parked message.
    #[command(after_help = "Example:\n  tasker dlq purge --yes")]
    Purge {
        /// Really drop them.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusFilter {
    Running,
    Complete,
    Failed,
}

impl From<StatusFilter> for TaskStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::Running => Self::Running,
            StatusFilter::Complete => Self::Complete,
            StatusFilter::Failed => Self::Failed,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
    Text,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        // The reader went away (`tasker list | head`): nothing is wrong.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let service = match cli.command {
        Command::Coordinator { .. } => "tasker-coordinator",
        _ => "tasker-cli",
    };
    // Flushes spans when `run` returns.
    let _telemetry = tasker_worker::telemetry::init(service);
    match cli.command {
        Command::Coordinator {
            templates,
            prefetch,
            retention_days,
            health_addr,
        } => {
            let registry = templates::load_dir(&templates)?;
            let config = CoordinatorConfig {
                amqp_url: cli.amqp_url,
                redis_url: cli.redis_url,
                prefetch,
                retention: Duration::from_secs_f64(retention_days * 86_400.0),
                health_addr,
                ..CoordinatorConfig::default()
            };
            let shutdown = tasker_worker::telemetry::shutdown_on_signal();
            tasker_coordinator::run(config, registry, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit {
            namespace,
            name,
            context,
            version,
            idempotency_key,
            wait,
            timeout,
            json,
        } => {
            let context: serde_json::Value = serde_json::from_str(&context)
                .context("--context is not valid JSON; pass an object such as '{\"key\":1}'")?;
            let mut request = TaskRequest::new(&namespace, &name, context);
            request.version = version;
            request.idempotency_key = idempotency_key;
            let client = Client::connect(&cli.amqp_url).await?;
            let submitted = client.submit(request).await?;
            let task_id = submitted.task_id;
            if !wait {
                if json {
                    outln!("{}", serde_json::json!({ "task_id": task_id }));
                } else {
                    outln!("submitted task {task_id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let reply = submitted.wait(Duration::from_secs_f64(timeout)).await?;
            print_reply(&reply, json)
        }
        Command::Status { task_id, json } => {
            let store = Store::connect(&cli.redis_url, Duration::ZERO).await?;
            let Some(snapshot) = store.task(task_id).await? else {
                return Ok(no_such_task(task_id));
            };
            let report = snapshot.report();
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report::status_table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch {
            task_id,
            templates,
            interval,
            json,
        } => watch(&cli.redis_url, task_id, &templates, interval, json).await,
        Command::Dlq { command } => dlq_command(&cli.amqp_url, command).await,
        Command::List {
            namespace,
            status,
            limit,
            json,
        } => {
            let store = Store::connect(&cli.redis_url, Duration::ZERO).await?;
            let tasks = store
                .list_tasks(namespace.as_deref(), status.map(Into::into), limit)
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&tasks)?);
            } else {
                out!("{}", report::task_list(&tasks, chrono::Utc::now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry {
            task_id,
            step,
            wait,
            timeout,
            json,
        } => {
            let action = TaskAction::Retry { step };
            operate(
                &cli.amqp_url,
                &cli.redis_url,
                task_id,
                action,
                wait,
                timeout,
                json,
            )
            .await
        }
        Command::Cancel {
            task_id,
            wait,
            timeout,
            json,
        } => {
            operate(
                &cli.amqp_url,
                &cli.redis_url,
                task_id,
                TaskAction::Cancel,
                wait,
                timeout,
                json,
            )
            .await
        }
        Command::Resolve {
            task_id,
            step,
            result,
            wait,
            timeout,
            json,
        } => {
            let result: serde_json::Value = serde_json::from_str(&result)
                .context("--result is not valid JSON; pass a value such as '{\"key\":1}'")?;
            let action = TaskAction::Resolve { step, result };
            operate(
                &cli.amqp_url,
                &cli.redis_url,
                task_id,
                action,
                wait,
                timeout,
                json,
            )
            .await
        }
        Command::Validate { paths } => validate(&paths),
        Command::Templates { command } => templates_command(command),
        Command::Demo { email, name, plan } => demo(&cli.amqp_url, &email, &name, &plan).await,
    }
}

/// Sends an operator's command to the coordinators of the task's namespace
/// and prints their answer; with `wait`, then waits for the task to end.
async fn operate(
    amqp_url: &str,
    redis_url: &str,
    task_id: Uuid,
    action: TaskAction,
    wait: bool,
    timeout: f64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = Store::connect(redis_url, Duration::ZERO).await?;
    let Some(snapshot) = store.task(task_id).await? else {
        return Ok(no_such_task(task_id));
    };
    let client = Client::connect(amqp_url).await?;
    let command = TaskCommand {
        protocol_version: tasker_protocol::PROTOCOL_VERSION,
        task_id,
        action,
    };
    let timeout = Duration::from_secs_f64(timeout);
    let reply = client
        .command(&snapshot.namespace, &command)
        .await?
        .wait(timeout)
        .await
        .with_context(|| {
            format!(
                "no coordinator of namespace {} answered; is one running? (deploy/dev status)",
                snapshot.namespace
            )
        })?;
    let code = print_reply(&reply, json && !wait)?;
    let accepted = matches!(&reply, Reply::Command(r) if r.accepted);
    if !wait || !accepted {
        return Ok(code);
    }
    // Poll the store: the task's end is announced to its requesters, not
    // to whoever retried it.
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let snapshot = store
            .task(task_id)
            .await?
            .context("the task expired while waiting")?;
        if snapshot.status != TaskStatus::Running {
            return print_reply(&Reply::Finished(snapshot.report()), json);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "task {task_id} is still running after {timeout:?}; `tasker status {task_id}` shows where it stands"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn dlq_command(amqp_url: &str, command: DlqCommand) -> anyhow::Result<ExitCode> {
    use tasker_coordinator::dlq::DeadLetters;
    let dlq = DeadLetters::connect(amqp_url).await?;
    let code = match command {
        DlqCommand::List { json } => {
            let letters = dlq.list().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                out!("{}", report::dead_letter_table(&letters));
            }
            ExitCode::SUCCESS
        }
        DlqCommand::Show { id, json } => match dlq.list().await?.into_iter().find(|l| l.id == id) {
            Some(letter) if json => {
                outln!("{}", serde_json::to_string_pretty(&letter)?);
                ExitCode::SUCCESS
            }
            Some(letter) => {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                outln!("id           {}", letter.id);
                outln!("type         {}", show(&letter.kind));
                outln!("task         {}", show(&letter.task_id));
                outln!("reason       {}", show(&letter.reason));
                outln!("from queue   {}", show(&letter.queue));
                outln!(
                    "sent to      exchange {:?}, routing key {:?}",
                    show(&letter.exchange),
                    show(&letter.routing_key)
                );
                outln!("body\n{}", letter.body);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no dead-lettered message {id}; `tasker dlq list` shows their ids");
                ExitCode::from(EXIT_NOT_FOUND)
            }
        },
        DlqCommand::Replay { id, json } => match dlq.replay(&id).await? {
            Some(letter) => {
                if json {
                    outln!("{}", serde_json::to_string_pretty(&letter)?);
                } else {
                    outln!(
                        "replayed {} to exchange {:?} with routing key {:?}",
                        letter.id,
                        letter.exchange.unwrap_or_default(),
                        letter.routing_key.unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no dead-lettered message {id}; `tasker dlq list` shows their ids");
                ExitCode::from(EXIT_NOT_FOUND)
            }
        },
        DlqCommand::Purge { yes, json } => {
            if !yes {
                eprintln!("error: purge drops every dead-lettered message for good; add --yes to do it");
                return Ok(ExitCode::from(2));
            }
            let purged = dlq.purge().await?;
            if json {
                outln!("{}", serde_json::json!({ "purged": purged }));
            } else {
                outln!("purged {purged} message(s)");
            }
            ExitCode::SUCCESS
        }
    };
    // Not closed by hand: the process ends here, and closing while the
    // publisher's channel winds down only makes lapin log a spurious error.
    drop(dlq);
    Ok(code)
}

/// `tasker watch`: redraws the task whenever it changes, until it ends.
async fn watch(
    redis_url: &str,
    task_id: Uuid,
    templates: &std::path::Path,
    interval: f64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let store = Store::connect(redis_url, Duration::ZERO).await?;
    // The DAG is drawn when the template is at hand; the table always is.
    let registry = templates::load_dir(templates).ok();
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let Some(snapshot) = store.task(task_id).await? else {
            return Ok(no_such_task(task_id));
        };
        let report = snapshot.report();
        let template = registry
            .as_ref()
            .and_then(|r| r.get(&report.namespace, &report.name, Some(&report.version)).ok());
        let frame = if json {
            serde_json::to_string(&report)?
        } else {
            report::watch_frame(&report, template.map(AsRef::as_ref))
        };
        if frame != last {
            if json {
                outln!("{frame}");
            } else if terminal {
                // Clear the screen and draw from the top.
                out!("\x1b[2J\x1b[H{frame}");
            } else {
                outln!("{frame}");
            }
            last = frame;
        }
        if report.status != TaskStatus::Running {
            return Ok(match report.status {
                TaskStatus::Complete => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_TASK_FAILED),
            });
        }
        tokio::time::sleep(Duration::from_secs_f64(interval.max(0.05))).await;
    }
}

/// Says that `task_id` is not in the store, and returns the exit code for it.
fn no_such_task(task_id: Uuid) -> ExitCode {
    eprintln!(
        "error: no task {task_id}; it never existed, or it finished more than the retention period ago"
    );
    ExitCode::from(EXIT_NOT_FOUND)
}

fn print_reply(reply: &Reply, json: bool) -> anyhow::Result<ExitCode> {
    Ok(match reply {
        Reply::Finished(report) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_string(report).expect("a report always serializes")
                );
            } else {
                out!("{}", report::status_table(report));
            }
            match report.status {
                TaskStatus::Complete => ExitCode::SUCCESS,
                TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Running => {
                    ExitCode::from(EXIT_TASK_FAILED)
                }
            }
        }
        Reply::Command(reply) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_string(reply).expect("a command reply always serializes")
                );
            } else if reply.accepted {
                outln!("{}", reply.message);
            } else {
                eprintln!("refused: {}", reply.message);
            }
            if reply.accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            }
        }
        Reply::Rejected(rejected) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_string(rejected).expect("a rejection always serializes")
                );
            } else {
                eprintln!("rejected ({:?}): {}", rejected.code, rejected.reason);
            }
            ExitCode::from(EXIT_REJECTED)
        }
    })
}

fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = 0;
    let mut failed = 0;
    for path in paths {
        if path.is_dir() {
            match templates::load_dir(path) {
                Ok(registry) => {
                    for t in registry.iter() {
                        outln!("ok  {}", t.key());
                        ok += 1;
                    }
                }
                Err(tasker_coordinator::Error::Templates(errors)) => {
                    for e in errors {
                        eprintln!("{e}");
                        failed += 1;
                    }
                }
                Err(e) => bail!(e),
            }
        } else {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            match TaskTemplate::from_yaml(&path.display().to_string(), &text) {
                Ok(t) => {
                    outln!("ok  {}  ({})", t.key(), path.display());
                    ok += 1;
                }
                Err(e) => {
                    eprintln!("{e}");
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} invalid, {ok} valid");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn templates_command(command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplatesCommand::List { templates, json } => {
            let registry = load_templates(&templates)?;
            if json {
                let list: Vec<serde_json::Value> = registry
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "namespace": t.namespace,
                            "name": t.name,
                            "version": t.version.to_string(),
                            "steps": t.steps.len(),
                            "description": t.description,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                out!("{}", report::template_table(registry.iter().map(AsRef::as_ref)));
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Graph {
            template,
            version,
            format,
            templates,
            json,
        } => {
            let Some((namespace, name)) = template.split_once('/') else {
                bail!("'{template}' is not NAMESPACE/NAME, e.g. microservices/user_registration");
            };
            let registry = load_templates(&templates)?;
            let template = match registry.get(namespace, name, version.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e} (templates read from {})", templates.display());
                    return Ok(ExitCode::from(EXIT_NOT_FOUND));
                }
            };
            let drawing = match format {
                GraphFormat::Mermaid => graph::mermaid(template, None),
                GraphFormat::Dot => graph::dot(template, None),
                GraphFormat::Text => graph::text(template, None),
                GraphFormat::Svg => render_svg(&graph::dot(template, None))?,
            };
            if json {
                let steps: Vec<serde_json::Value> = template
                    .steps
                    .iter()
                    .map(|s| serde_json::json!({ "name": s.name, "dependencies": s.dependencies }))
                    .collect();
                let out =
                    serde_json::json!({ "template": template.key(), "steps": steps, "drawing": drawing });
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                out!("{drawing}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_templates(dir: &std::path::Path) -> anyhow::Result<tasker_protocol::TemplateRegistry> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory of templates; pass --templates DIR or set TASKER_TEMPLATES",
            dir.display()
        );
    }
    match templates::load_dir(dir) {
        Ok(registry) => Ok(registry),
        Err(tasker_coordinator::Error::Templates(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!(
                "{} template problem(s) in {}; `tasker validate {}` shows them too",
                errors.len(),
                dir.display(),
                dir.display()
            )
        }
        Err(e) => bail!(e),
    }
}

/// Renders DOT source to SVG with Graphviz's `dot`.
fn render_svg(source: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "--format svg needs Graphviz's `dot` ({e}); install it (apt-get install graphviz), or print the source with --format dot"
            )
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(source.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("Graphviz's `dot -Tsvg` failed ({})", output.status);
    }
    Ok(String::from_utf8(output.stdout)?)
}

async fn demo(amqp_url: &str, email: &str, name: &str, plan: &str) -> anyhow::Result<ExitCode> {
    let context = serde_json::json!({
        "user_info": { "email": email, "name": name, "plan": plan, "source": "signup_form" }
    });
    outln!("Submitting microservices/user_registration for {name} <{email}> on the {plan} plan");
    let client = Client::connect(amqp_url).await?;
    // The task joins this span's trace: the request carries its context.
    let span = tracing::info_span!("register user", otel.kind = "producer");
    let submitted = client
        .create_task("microservices", "user_registration", context)
        .instrument(span.clone())
        .await?;
    outln!("task {}: waiting for it to finish…", submitted.task_id);
    match tasker_worker::telemetry::trace_id(&span) {
        Some(trace) => outln!("trace {trace}: open it in Jaeger (http://localhost:16686/trace/{trace})\n"),
        None => outln!("(set OTEL_EXPORTER_OTLP_ENDPOINT to export this task's trace)\n"),
    }
    let reply = submitted.wait(Duration::from_secs(120)).await?;
    let Reply::Finished(report) = &reply else {
        return print_reply(&reply, false);
    };
    outln!("Timeline (each bar is one step; billing and preferences run side by side,");
    outln!("and send_welcome_sequence starts only when both have finished):\n");
    out!("{}", report::timeline(report));
    outln!();
    out!("{}", report::status_table(report));
    outln!("\nFinal report:");
    outln!("{}", serde_json::to_string_pretty(report)?);
    client.close().await;
    Ok(match report.status {
        TaskStatus::Complete => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_TASK_FAILED),
    })
}
