//! `tasker workers`: the live workers of each namespace, as their
//! announcements tell the coordinators.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use tasker_coordinator::Store;
use tasker_coordinator::store::WorkerSeen;

use super::args::Output;
use super::output::{out, print_json};

/// `tasker workers`' arguments.
#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// Only workers of this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Also workers not heard from lately (within the last hour).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    output: Output,
}

/// One worker, as `--json` prints it.
#[derive(serde::Serialize)]
struct Listed<'a> {
    live: bool,
    last_seen: DateTime<Utc>,
    #[serde(flatten)]
    announcement: &'a tasker_protocol::WorkerAnnouncement,
}

/// Lists the workers.
pub async fn run(args: WorkersArgs, redis_url: &str) -> anyhow::Result<ExitCode> {
    let store = Store::connect(redis_url, Duration::ZERO).await?;
    let now = Utc::now();
    let workers: Vec<WorkerSeen> = store
        .workers()
        .await?
        .into_iter()
        .filter(|w| args.all || w.is_live(now))
        .filter(|w| {
            args.namespace
                .as_ref()
                .is_none_or(|ns| w.announcement.serves.iter().any(|s| &s.namespace == ns))
        })
        .collect();
    if args.output.json {
        let listed: Vec<Listed<'_>> = workers
            .iter()
            .map(|w| Listed {
                live: w.is_live(now),
                last_seen: w.last_seen(),
                announcement: &w.announcement,
            })
            .collect();
        print_json(&listed)?;
    } else {
        out!("{}", table(&workers, args.namespace.as_deref(), now));
    }
    Ok(ExitCode::SUCCESS)
}

/// The workers, one line per namespace each serves, by namespace.
fn table(workers: &[WorkerSeen], only: Option<&str>, now: DateTime<Utc>) -> String {
    let mut rows: Vec<[String; 7]> = Vec::new();
    for w in workers {
        let a = &w.announcement;
        for served in a
            .serves
            .iter()
            .filter(|s| only.is_none_or(|ns| ns == s.namespace))
        {
            rows.push([
                served.namespace.clone(),
                a.service.clone(),
                format!("{} {}", a.language, a.sdk_version),
                format!("{}:{}", a.host, a.pid),
                a.concurrency.to_string(),
                format!("{} ago", ago(now, w.last_seen())),
                served.callables.join(", "),
            ]);
        }
    }
    rows.sort();
    let heads = [
        "NAMESPACE",
        "SERVICE",
        "SDK",
        "HOST:PID",
        "CONCURRENCY",
        "LAST SEEN",
        "CALLABLES",
    ];
    // Every column but the last is padded to its widest cell.
    let widths: Vec<usize> = (0..heads.len() - 1)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([heads[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("(no live workers; they announce themselves every 10 s once they run)\n");
        return out;
    }
    let line = |out: &mut String, cells: &[&str]| {
        for (c, width) in widths.iter().enumerate() {
            let _ = write!(out, "{:<width$}  ", cells[c]);
        }
        let _ = writeln!(out, "{}", cells[heads.len() - 1]);
    };
    line(&mut out, &heads);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

/// `then`, said as a short time before `now`.
fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use tasker_protocol::{PROTOCOL_VERSION, ServedNamespace, WorkerAnnouncement};
    use uuid::Uuid;

    use super::*;

    fn worker(
        service: &str,
        language: &str,
        callables: &[&str],
        seen_secs_ago: i64,
        now: DateTime<Utc>,
    ) -> WorkerSeen {
        WorkerSeen {
            announcement: WorkerAnnouncement {
                protocol_version: PROTOCOL_VERSION,
                worker_id: Uuid::nil(),
                service: service.to_owned(),
                serves: vec![ServedNamespace {
                    namespace: "microservices".to_owned(),
                    queue: format!("tasker.steps.microservices.{service}"),
                    callables: callables.iter().map(|c| (*c).to_owned()).collect(),
                    partitions: 1,
                }],
                language: language.to_owned(),
                sdk_version: "0.1.0".to_owned(),
                host: "web-1".to_owned(),
                pid: 42,
                concurrency: 8,
                started_at: now,
                sent_at: now,
                every_seconds: 10.0,
                leaving: false,
            },
            received_ms: now.timestamp_millis() - seen_secs_ago * 1000,
        }
    }

    #[test]
    fn the_table_lists_each_service_with_its_callables() {
        let now = DateTime::from_timestamp_millis(1_796_000_000_000).unwrap();
        let workers = [
            worker("user", "rust", &["CreateUser", "UpdateStatus"], 2, now),
            worker("billing", "python", &["SetupBilling"], 7, now),
        ];
        insta::assert_snapshot!(table(&workers, None, now));
        assert!(workers[0].is_live(now));
        assert!(!worker("gone", "rust", &["X"], 31, now).is_live(now));
        assert!(table(&[], None, now).contains("no live workers"));
        assert!(table(&workers, Some("payments"), now).contains("no live workers"));
    }
}
