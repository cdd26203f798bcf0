//! `tasker dlq`: the dead-letter queue, read and put back.

use std::process::ExitCode;

use clap::Subcommand;
use tasker_coordinator::dlq::DeadLetters;

use super::args::Output;
use super::output::{EXIT_NOT_FOUND, EXIT_USAGE, out, outln, print_json};
use super::report;

/// `tasker dlq`'s commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every parked message with its reason, oldest first.
    #[command(after_help = "Examples:\n  tasker dlq list\n  tasker dlq list --json")]
    List {
        #[command(flatten)]
        output: Output,
    },
    /// One message in full: its reason, where it came from and its body.
    #[command(after_help = "Example:\n  tasker dlq show 5d2c8a90-1b7e-4f3a-a6d4-0c9e8b7f6a51")]
    Show {
        /// The message id, as `dlq list` shows it.
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Publish a message back to where it was first sent, once its cause
    /// is fixed, and take it off the dead-letter queue.
    #[command(after_help = "Example:\n  tasker dlq replay 5d2c8a90-1b7e-4f3a-a6d4-0c9e8b7f6a51")]
    Replay {
        /// The message id, as `dlq list` shows it.
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Drop every parked message.
    #[command(after_help = "Example:\n  tasker dlq purge --yes")]
    Purge {
        /// Really drop them.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        output: Output,
    },
}

/// Runs a `tasker dlq` command.
pub async fn run(command: DlqCommand, amqp_url: &str) -> anyhow::Result<ExitCode> {
    let dlq = DeadLetters::connect(amqp_url).await?;
    let code = match command {
        DlqCommand::List { output } => {
            let letters = dlq.list().await?;
            if output.json {
                print_json(&letters)?;
            } else {
                out!("{}", report::dead_letter_table(&letters));
            }
            ExitCode::SUCCESS
        }
        DlqCommand::Show { id, output } => match dlq.list().await?.into_iter().find(|l| l.id == id) {
            Some(letter) if output.json => {
                print_json(&letter)?;
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
            None => no_such_letter(&id),
        },
        DlqCommand::Replay { id, output } => match dlq.replay(&id).await? {
            Some(letter) => {
                if output.json {
                    print_json(&letter)?;
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
            None => no_such_letter(&id),
        },
        DlqCommand::Purge { yes, output } => {
            if !yes {
                eprintln!("error: purge drops every dead-lettered message for good; add --yes to do it");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            let purged = dlq.purge().await?;
            if output.json {
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

fn no_such_letter(id: &str) -> ExitCode {
    eprintln!("error: no dead-lettered message {id}; `tasker dlq list` shows their ids");
    ExitCode::from(EXIT_NOT_FOUND)
}
