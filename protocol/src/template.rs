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
//!     retry:                       # optional; every key defaults
//!       retryable: true            # default true
//!       max_attempts: 3            # default 3; counts every attempt, the first included
//!       backoff: exponential       # exponential (default) | linear | fixed | none
//!       initial_delay: 1           # seconds, fractions allowed; default 1
//!       max_delay: 300             # seconds; default 300, or initial_delay if that is larger
//! ```

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;

use crate::dag::Dag;
use crate::names::{closest, name_problem};
use crate::retry::{Backoff, RetryPolicy};

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

/// Rewords serde's messages for a file that does not fit the schema: names
/// the template and the step instead of `steps[3]`, and suggests the key or
/// value that was probably meant.
fn issue_from_yaml_error(e: &serde_yaml::Error, text: &str) -> TemplateIssue {
    let line = e.location().map(|l| l.line());
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the line is reported apart.
    let full = full.split(" at line ").next().unwrap_or(&full);
    let (path, detail) = split_path(full);
    let names = NamesRead::from_text(text);
    let place = names.describe(path);
    // serde quotes the offending name first, then what it expected.
    let quoted: Vec<&str> = detail.split('`').skip(1).step_by(2).collect();
    let body = if let (true, Some((found, expected))) =
        (detail.starts_with("unknown field"), quoted.split_first())
    {
        let allowed = quoted_list(expected);
        match closest(found, expected.iter().copied()) {
            Some(s) => format!(
                "unknown key {found:?} in {place} (did you mean {s:?}?); the keys allowed there are {allowed}"
            ),
            None => {
                format!("unknown key {found:?} in {place}; remove it, the keys allowed there are {allowed}")
            }
        }
    } else if let (true, Some((found, expected))) =
        (detail.starts_with("unknown variant"), quoted.split_first())
    {
        let key = path.rsplit('.').next().unwrap_or("value");
        let allowed = quoted_list(expected);
        let (owner, _) = path.rsplit_once('.').unwrap_or(("", path));
        let owner = names.describe(owner);
        match closest(found, expected.iter().copied()) {
            Some(s) => {
                format!("unknown {key} {found:?} in {owner} (did you mean {s:?}?); use one of {allowed}")
            }
            None => format!("unknown {key} {found:?} in {owner}; use one of {allowed}"),
        }
    } else if let (true, Some(field)) = (detail.starts_with("missing field"), quoted.first()) {
        format!("{place} has no {field:?}; add it, as docs/templates.md describes")
    } else if !names.is_yaml {
        format!(
            "the file is not valid YAML: {detail}; fix the indentation, quoting or `key: value` syntax near this line"
        )
    } else {
        format!("{place}: {detail}; fix it to match the template schema in docs/templates.md")
    };
    let message = match names.label {
        Some(label) => format!("{label}: {body}"),
        None => body,
    };
    TemplateIssue { line, message }
}

/// Splits serde_yaml's `steps[0].retry: message` into the path and the
/// message; the path is empty for the top level.
fn split_path(text: &str) -> (&str, &str) {
    match text.split_once(": ") {
        Some((path, rest))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']')) =>
        {
            (path, rest)
        }
        _ => ("", text),
    }
}

/// The names that can be read from a file that does not fit the schema,
/// so that its errors can say which template and which step they are about.
struct NamesRead {
    /// Whether the text is YAML at all.
    is_yaml: bool,
    label: Option<String>,
    steps: Vec<Option<String>>,
}

impl NamesRead {
    fn from_text(text: &str) -> Self {
        let value = serde_yaml::from_str::<serde_yaml::Value>(text);
        let is_yaml = value.is_ok();
        let value = value.unwrap_or_default();
        let string = |v: Option<&serde_yaml::Value>| v.and_then(serde_yaml::Value::as_str).map(str::to_owned);
        let label = match (
            string(value.get("namespace_name")),
            string(value.get("name")),
            value.get("version"),
        ) {
            (Some(namespace), Some(name), Some(version)) => {
                Some(template_label(&namespace, &name, &version_text(version)))
            }
            _ => None,
        };
        let steps = value
            .get("steps")
            .and_then(serde_yaml::Value::as_sequence)
            .map(|steps| steps.iter().map(|s| string(s.get("name"))).collect())
            .unwrap_or_default();
        Self {
            is_yaml,
            label,
            steps,
        }
    }

    /// `steps[0].retry` as `the retry of step "create_user_account"`.
    fn describe(&self, path: &str) -> String {
        if path.is_empty() {
            return "the template".to_owned();
        }
        let Some(rest) = path.strip_prefix("steps[") else {
            return format!("the template's {path}");
        };
        let Some((index, rest)) = rest.split_once(']') else {
            return path.to_owned();
        };
        let step = match index
            .parse::<usize>()
            .ok()
            .and_then(|i| self.steps.get(i).cloned().flatten())
        {
            Some(name) => format!("step {name:?}"),
            None => format!("steps[{index}]"),
        };
        match rest.strip_prefix('.') {
            Some(inner) => format!("the {inner} of {step}"),
            None => step,
        }
    }
}

/// Collects every semantic problem of one parsed file.
struct Validation<'a> {
    file: &'a str,
    outline: Outline<'a>,
    issues: Vec<TemplateIssue>,
}

impl Validation<'_> {
    fn run(mut self, raw: RawTemplate) -> Result<TaskTemplate, TemplateError> {
        let version_text = version_text(&raw.version);
        let label = template_label(&raw.namespace_name, &raw.name, &version_text);
        let version = match semver::Version::parse(&version_text) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = self.outline.top("version");
                self.issue(
                    line,
                    format!(
                        "{label}: version {version_text:?} is not semver ({e}); write it as MAJOR.MINOR.PATCH, for example \"1.0.0\""
                    ),
                );
                None
            }
        };
        for (key, value) in [("namespace_name", &raw.namespace_name), ("name", &raw.name)] {
            if let Some(problem) = name_problem(value) {
                let line = self.outline.top(key);
                self.issue(
                    line,
                    format!("{label}: {key} {value:?} cannot become part of a queue name: it {problem}"),
                );
            }
        }
        if raw.steps.is_empty() {
            let line = self.outline.top("steps");
            self.issue(
                line,
                format!("{label}: the template has no steps; add at least one under `steps:`"),
            );
        }

        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in raw.steps.iter().enumerate() {
            let line = self.outline.step_key(i, &["name"]);
            if let Some(problem) = name_problem(&step.name) {
                self.issue(
                    line,
                    format!(
                        "{label}: step {:?} cannot become part of a queue name: it {problem}",
                        step.name
                    ),
                );
            }
            if let Some(first) = index.insert(&step.name, i) {
                let first_line = self
                    .outline
                    .step_key(first, &["name"])
                    .map(|n| format!(" (first at line {n})"))
                    .unwrap_or_default();
                self.issue(
                    line,
                    format!(
                        "{label}: step {:?} is defined twice{first_line}; rename one of them or merge them",
                        step.name
                    ),
                );
            }
        }

        let names: Vec<&str> = raw.steps.iter().map(|s| s.name.as_str()).collect();
        let mut dependencies = Vec::with_capacity(raw.steps.len());
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (i, step) in raw.steps.iter().enumerate() {
            let mut deps = Vec::new();
            for dep in &step.dependencies {
                match index.get(dep.as_str()) {
                    Some(&d) => deps.push(d),
                    None => {
                        let hint = closest(dep, names.iter().copied())
                            .map(|s| format!(" (did you mean {s:?}?)"))
                            .unwrap_or_else(|| {
                                format!(
                                    "; depend on one of the steps of this template: {}",
                                    quoted_list(&names)
                                )
                            });
                        let line = self.outline.dependency(i, dep);
                        self.issue(
                            line,
                            format!(
                                "{label}: step {:?} depends on unknown step {dep:?}{hint}",
                                step.name
                            ),
                        );
                    }
                }
            }
            dependencies.push(deps);
            steps.push(self.step(&label, i, step));
        }
        if !raw.steps.is_empty() && raw.steps.iter().all(|s| !s.dependencies.is_empty()) {
            let line = self.outline.top("steps");
            self.issue(
                line,
                format!(
                    "{label}: no step is a root (every step has dependencies), so nothing could start; give the step that should run first `dependencies: []`"
                ),
            );
        }

        let dag = if index.len() == raw.steps.len() {
            match Dag::new(&dependencies) {
                Ok(dag) => Some(dag),
                Err(cycle) => {
                    let path: Vec<&str> = cycle.iter().map(|&s| names[s]).collect();
                    // The path runs from each step to one that waits for it, so
                    // its first step lists the second-to-last as a dependency.
                    let line = self.outline.dependency(cycle[0], path[path.len() - 2]);
                    self.issue(
                        line,
                        format!(
                            "{label}: the dependencies form a cycle: {} (each step waits for the one before it); remove one of these dependencies",
                            path.join(" → ")
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };

        match (self.issues.is_empty(), version, dag) {
            (true, Some(version), Some(dag)) => Ok(TaskTemplate {
                namespace: raw.namespace_name,
                name: raw.name,
                version,
                description: raw.description,
                steps: steps.into_iter().flatten().collect(),
                dag,
            }),
            _ => {
                // Problems found in different passes are reported in the order of the file.
                self.issues.sort_by_key(|issue| issue.line.unwrap_or(usize::MAX));
                Err(TemplateError {
                    file: self.file.to_owned(),
                    issues: self.issues,
                })
            }
        }
    }

    /// Validates the retry policy and timeout of step `i`.
    fn step(&mut self, label: &str, i: usize, step: &RawStep) -> Option<StepTemplate> {
        let mut ok = true;
        let r = &step.retry;
        let max_attempts = r
            .max_attempts
            .unwrap_or(i64::from(RetryPolicy::DEFAULT_MAX_ATTEMPTS));
        if max_attempts < 1 {
            let line = self.outline.step_key(i, &["retry", "max_attempts"]);
            self.issue(
                line,
                format!(
                    "{label}: step {:?} has max_attempts {max_attempts}; it counts every attempt, the first included, so make it at least 1",
                    step.name
                ),
            );
            ok = false;
        }
        let initial = r.initial_delay.unwrap_or(RetryPolicy::DEFAULT_INITIAL_DELAY_SECS);
        let max = r
            .max_delay
            .unwrap_or(RetryPolicy::DEFAULT_MAX_DELAY_SECS.max(initial));
        let mut delays = [None, None];
        for (slot, (key, value)) in delays
            .iter_mut()
            .zip([("initial_delay", initial), ("max_delay", max)])
        {
            match Duration::try_from_secs_f64(value) {
                Ok(d) => *slot = Some(d),
                Err(_) => {
                    let line = self.outline.step_key(i, &["retry", key]);
                    let fix = if value.is_finite() && value >= 0.0 {
                        "give a smaller number of seconds"
                    } else {
                        "give a number of seconds, 0 or more"
                    };
                    self.issue(
                        line,
                        format!("{label}: step {:?} has {key} {value}; {fix}", step.name),
                    );
                    ok = false;
                }
            }
        }
        if initial > max {
            let key = if r.initial_delay.is_some() {
                "initial_delay"
            } else {
                "max_delay"
            };
            let line = self.outline.step_key(i, &["retry", key]);
            self.issue(
                line,
                format!(
                    "{label}: step {:?} has initial_delay {initial} greater than max_delay {max}; raise max_delay or lower initial_delay",
                    step.name
                ),
            );
            ok = false;
        }
        let timeout = match step.timeout_seconds {
            None => None,
            Some(t) => match Duration::try_from_secs_f64(t) {
                Ok(d) if t > 0.0 => Some(d),
                _ => {
                    let line = self.outline.step_key(i, &["timeout_seconds"]);
                    let fix = if t > 0.0 {
                        "a smaller number of seconds"
                    } else {
                        "a number of seconds above 0"
                    };
                    self.issue(
                        line,
                        format!(
                            "{label}: step {:?} has timeout_seconds {t}; give {fix}, or leave it out for no timeout",
                            step.name
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        if step.handler.callable.trim().is_empty() {
            let line = self.outline.step_key(i, &["handler", "callable"]);
            self.issue(
                line,
                format!(
                    "{label}: step {:?} has an empty handler.callable; name the handler that workers register for this step",
                    step.name
                ),
            );
            ok = false;
        }
        let [Some(initial_delay), Some(max_delay)] = delays else {
            return None;
        };
        if !ok {
            return None;
        }
        Some(StepTemplate {
            name: step.name.clone(),
            description: step.description.clone(),
            callable: step.handler.callable.clone(),
            initialization: step.handler.initialization.clone(),
            dependencies: step.dependencies.clone(),
            retry: RetryPolicy {
                retryable: r.retryable.unwrap_or(RetryPolicy::DEFAULT_RETRYABLE),
                max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
                backoff: r.backoff.unwrap_or_default(),
                initial_delay,
                max_delay,
            },
            timeout,
        })
    }

    fn issue(&mut self, line: Option<usize>, message: String) {
        self.issues.push(TemplateIssue { line, message });
    }
}

/// Where the keys of a template are in its text.
///
/// serde_yaml keeps no positions once a value is parsed, so this reads the
/// block layout of the text itself: each line's indentation, whether it is a
/// list item, and its key. A key it cannot place (flow style nested more
/// than one level, unusual layouts) gets no line rather than a wrong one, and
/// every lookup about a step stays within that step's lines.
struct Outline<'a> {
    /// The lines that hold something, without blank and comment lines.
    lines: Vec<Line<'a>>,
    /// For each step, the indices of `lines` it spans; empty when the steps
    /// could not be told apart.
    steps: Vec<Range<usize>>,
}

struct Line<'a> {
    /// 1-based line number in the file.
    number: usize,
    /// The column where the content starts, after any `- `.
    col: usize,
    /// The column of the `-`, for a list item.
    dash: Option<usize>,
    /// The text from `col` on.
    content: &'a str,
}

impl<'a> Outline<'a> {
    fn new(text: &'a str, step_count: usize) -> Self {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start_matches(' ');
            if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            let line = match trimmed.strip_prefix('-') {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    let content = rest.trim_start_matches(' ');
                    Line {
                        number: i + 1,
                        col: indent + 1 + rest.len() - content.len(),
                        dash: Some(indent),
                        content,
                    }
                }
                _ => Line {
                    number: i + 1,
                    col: indent,
                    dash: None,
                    content: trimmed,
                },
            };
            lines.push(line);
        }
        let mut outline = Self {
            lines,
            steps: Vec::new(),
        };
        outline.steps = outline
            .step_ranges()
            .filter(|r| r.len() == step_count)
            .unwrap_or_default();
        outline
    }

    /// The lines of each item of the top-level `steps:` list.
    fn step_ranges(&self) -> Option<Vec<Range<usize>>> {
        let steps = self.top_index("steps")?;
        let block = self.block(steps);
        let item = self.lines[..block.end].get(block.start)?.dash?;
        let starts: Vec<usize> = block
            .clone()
            .filter(|&j| self.lines[j].dash == Some(item))
            .collect();
        let ends = starts.iter().skip(1).copied().chain([block.end]);
        Some(starts.iter().zip(ends).map(|(&start, end)| start..end).collect())
    }

    /// The lines after line `i` that are indented deeper than it: its value.
    fn block(&self, i: usize) -> Range<usize> {
        let col = self.lines[i].col;
        let end = (i + 1..self.lines.len())
            .find(|&j| self.lines[j].col <= col)
            .unwrap_or(self.lines.len());
        i + 1..end
    }

    fn top_index(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.col == 0 && l.dash.is_none() && key_of(l.content) == Some(key))
    }

    /// The line of top-level key `key`.
    fn top(&self, key: &str) -> Option<usize> {
        self.top_index(key).map(|i| self.lines[i].number)
    }

    /// The line of `path` (such as `["retry", "max_attempts"]`) in step `step`.
    fn step_key(&self, step: usize, path: &[&str]) -> Option<usize> {
        self.step_key_index(step, path).map(|i| self.lines[i].number)
    }

    fn step_key_index(&self, step: usize, path: &[&str]) -> Option<usize> {
        let range = self.steps.get(step)?.clone();
        let first = &self.lines[range.start];
        // `-` alone on its line puts the step's first key on the next one.
        let col = if first.content.is_empty() {
            self.lines[range.clone()].get(1)?.col
        } else {
            first.col
        };
        self.find(range, col, path)
    }

    fn find(&self, range: Range<usize>, col: usize, path: &[&str]) -> Option<usize> {
        let (key, rest) = path.split_first()?;
        let at = range
            .clone()
            .find(|&j| self.lines[j].col == col && key_of(self.lines[j].content) == Some(key))?;
        let Some(inner) = rest.first() else {
            return Some(at);
        };
        let block = self.block(at);
        let block = block.start..block.end.min(range.end);
        match self.lines[block.clone()].first() {
            Some(first) => self.find(block, first.col, rest),
            // A flow mapping on the key's own line: `retry: {max_attempts: 0}`.
            None => value_of(self.lines[at].content).contains(inner).then_some(at),
        }
    }

    /// The line that lists `dependency` among the dependencies of step `step`.
    fn dependency(&self, step: usize, dependency: &str) -> Option<usize> {
        let at = self.step_key_index(step, &["dependencies"])?;
        let inline = value_of(self.lines[at].content);
        if !inline.is_empty() {
            // A flow list on the key's own line: `dependencies: [a, b]`.
            let listed = inline
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .any(|d| unquote(d) == dependency);
            return listed.then_some(self.lines[at].number);
        }
        self.block(at)
            .find(|&j| self.lines[j].dash.is_some() && unquote(self.lines[j].content) == dependency)
            .map(|j| self.lines[j].number)
    }
}

/// The key of a `key: value` or `key:` line.
fn key_of(content: &str) -> Option<&str> {
    let colon = content
        .char_indices()
        .find(|&(i, c)| {
            c == ':'
                && content[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(|n| n == ' ' || n == '\t')
        })?
        .0;
    Some(unquote(&content[..colon]))
}

/// The value of a `key: value` line, without a trailing comment.
fn value_of(content: &str) -> &str {
    let value = match key_of(content) {
        Some(_) => content.split_once(':').map_or("", |(_, v)| v),
        None => content,
    };
    let value = value.trim();
    if value.starts_with('#') {
        ""
    } else {
        value.split(" #").next().unwrap_or(value).trim()
    }
}

fn unquote(v: &str) -> &str {
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.trim_matches(|c| c == '"' || c == '\'')
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
