//! The task-template schema, its defaults, and its validation.
//!
//! A template is YAML, one file per workflow version:
//!
//! ```yaml
//! name: user_registration          # required; letters, digits, '_' or '-'
//! namespace_name: microservices    # required; names the step queue
//! version: 1.0.0                   # required; semver
//! description: "..."               # optional
//! steps:                           # required; at least one
//!   - name: create_user_account    # required; unique in the template
//!     description: "..."           # optional
//!     handler:
//!       callable: Microservices::StepHandlers::CreateUserAccountHandler   # required
//!       initialization: { any: map }   # optional, default {}; handed to the handler
//!     dependencies: []             # optional, default []
//!     timeout_seconds: 30          # optional, default none (the worker never times the step out)
//!     results_from: [create_user_account]   # optional; default: every ancestor's result
//!     retry:                       # optional; every key defaults
//!       retryable: true            # default true
//!       max_attempts: 3            # default 3; counts every attempt, the first included
//!       backoff: exponential       # exponential (default) | linear | fixed | none
//!       initial_delay: 1           # seconds, fractions allowed; default 1
//!       max_delay: 300             # seconds; default 300, or initial_delay if that is larger
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::dag::Dag;
use crate::retry::{Backoff, RetryPolicy};

mod outline;
mod validation;
mod yaml_error;

use outline::Outline;
use validation::Validation;
use yaml_error::issue_from_yaml_error;

/// A validated workflow: its identity, its steps, and their graph.
#[derive(Debug, Clone)]
pub struct TaskTemplate {
    /// The namespace, which names the step queue its workers consume.
    pub namespace: String,
    /// The workflow's name, unique within its namespace.
    pub name: String,
    /// The workflow's version; several versions may be loaded at once.
    pub version: semver::Version,
    /// Free text.
    pub description: Option<String>,
    /// The steps, in the order the file lists them.
    pub steps: Vec<StepTemplate>,
    /// The steps' dependency graph, by index into `steps`.
    pub dag: Dag,
    /// By step index, the steps whose results its step-ready message
    /// carries, in template order: those its `results_from` names, or every
    /// ancestor when it names none.
    pub carried: Vec<Vec<usize>>,
}

/// One step of a template.
#[derive(Debug, Clone)]
pub struct StepTemplate {
    /// Unique within its template.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The key a worker looks its handler up by.
    pub callable: String,
    /// Configuration handed to the handler with every attempt.
    pub initialization: serde_json::Map<String, serde_json::Value>,
    /// The names of the steps this one waits for.
    pub dependencies: Vec<String>,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// How long one attempt may run before it fails with a retryable `timeout`.
    pub timeout: Option<Duration>,
    /// The ancestors whose results the step's message carries, when the
    /// template names them; every ancestor's when it does not.
    pub results_from: Option<Vec<String>>,
}

impl TaskTemplate {
    /// Parses and validates a template from YAML text. `file` names the
    /// source in error messages.
    ///
    /// # Errors
    ///
    /// Returns every problem found, each with the line where it is known and
    /// what to do about it.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, TemplateError> {
        let raw: RawTemplate = serde_yaml::from_str(text).map_err(|e| TemplateError {
            file: file.to_owned(),
            issues: vec![issue_from_yaml_error(&e, text)],
        })?;
        let outline = Outline::new(text, raw.steps.len());
        Validation {
            file,
            outline,
            issues: Vec::new(),
        }
        .run(raw)
    }

    /// `namespace/name@version`, the way messages name a template.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}@{}", self.namespace, self.name, self.version)
    }

    /// The index of the step called `name`.
    #[must_use]
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The steps whose results the step-ready message of `step` carries.
    #[must_use]
    pub fn carried(&self, step: usize) -> &[usize] {
        &self.carried[step]
    }
}

/// Why a template could not be loaded: one or more issues in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// The file, as it was named to [`TaskTemplate::from_yaml`].
    pub file: String,
    /// Every problem found, in the order of the file where possible.
    pub issues: Vec<TemplateIssue>,
}

/// One problem in a template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateIssue {
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match issue.line {
                Some(line) => write!(f, "{}:{line}: {}", self.file, issue.message)?,
                None => write!(f, "{}: {}", self.file, issue.message)?,
            }
        }
        Ok(())
    }
}

// The file as written. `deny_unknown_fields` makes serde report a misspelt
// key with its line; the messages are then reworded with a suggestion.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    namespace_name: String,
    version: serde_yaml::Value,
    #[serde(default)]
    description: Option<String>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    #[serde(default)]
    description: Option<String>,
    handler: RawHandler,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    timeout_seconds: Option<f64>,
    #[serde(default)]
    results_from: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    callable: String,
    #[serde(default)]
    initialization: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    retryable: Option<bool>,
    max_attempts: Option<i64>,
    backoff: Option<Backoff>,
    initial_delay: Option<f64>,
    max_delay: Option<f64>,
}

/// How a template names itself in messages: `template namespace/name@version`.
fn template_label(namespace: &str, name: &str, version: &str) -> String {
    format!("template {namespace}/{name}@{version}")
}

/// A YAML value written where a version belongs, as text.
fn version_text(version: &serde_yaml::Value) -> String {
    match version {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => serde_yaml::to_string(other).map_or_else(|_| format!("{other:?}"), |s| s.trim().to_owned()),
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses every `(file, text)` pair, and returns the templates or every
/// error of every file.
///
/// # Errors
///
/// Returns one [`TemplateError`] per invalid file.
pub fn parse_all<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<TaskTemplate>, Vec<TemplateError>> {
    let mut templates = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match TaskTemplate::from_yaml(file, text) {
            Ok(t) => templates.push(t),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(templates)
    } else {
        Err(errors)
    }
}
