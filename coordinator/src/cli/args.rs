//! Flags that several commands share, each declared once and flattened
//! into the commands that take it.

use std::path::PathBuf;

use clap::Args;

/// Where RabbitMQ and Redis are; every command takes these.
#[derive(Debug, Clone, Args)]
pub struct Servers {
    /// RabbitMQ URL.
    #[arg(long, global = true, env = "TASKER_AMQP_URL", default_value = tasker_runtime::defaults::AMQP_URL, hide_env_values = true)]
    pub amqp_url: String,
    /// Redis URL.
    #[arg(long, global = true, env = "TASKER_REDIS_URL", default_value = tasker_coordinator::DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
}

/// How a command prints.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the task templates are.
#[derive(Debug, Clone, Args)]
pub struct TemplatesDir {
    /// Directory of task templates, searched recursively.
    #[arg(long = "templates", env = "TASKER_TEMPLATES", default_value = "templates")]
    pub dir: PathBuf,
}

/// Waiting for a command's answer, and then perhaps for its task.
#[derive(Debug, Clone, Copy, Args)]
pub struct Wait {
    /// Then wait for the task to end and print its steps.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait for the coordinator's answer, and with --wait for
    /// the task.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}
