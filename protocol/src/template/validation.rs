//! The semantic checks of a parsed template: names, versions,
//! dependencies, cycles, retry settings, each problem with its line.

use std::collections::HashMap;
use std::time::Duration;

use crate::dag::Dag;
use crate::names::{closest, name_problem};
use crate::retry::RetryPolicy;
use crate::topology;

use super::outline::Outline;
use super::{
    RawStep, RawTemplate, StepTemplate, TaskTemplate, TemplateError, TemplateIssue, quoted_list,
    template_label, version_text,
};

/// Collects every semantic problem of one parsed file.
pub(super) struct Validation<'a> {
    pub(super) file: &'a str,
    pub(super) outline: Outline<'a>,
    pub(super) issues: Vec<TemplateIssue>,
}

impl Validation<'_> {
    pub(super) fn run(mut self, raw: RawTemplate) -> Result<TaskTemplate, TemplateError> {
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
            steps.push(self.step(&label, &raw.namespace_name, i, step));
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

        let carried = dag.as_ref().map(|dag| self.carried(&label, &raw, &index, dag));

        match (self.issues.is_empty(), version, dag, carried) {
            (true, Some(version), Some(dag), Some(carried)) => Ok(TaskTemplate {
                namespace: raw.namespace_name,
                name: raw.name,
                version,
                description: raw.description,
                steps: steps.into_iter().flatten().collect(),
                dag,
                carried,
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
    fn step(&mut self, label: &str, namespace: &str, i: usize, step: &RawStep) -> Option<StepTemplate> {
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
        let key = topology::step_routing_key(namespace, &step.handler.callable);
        if key.len() > topology::MAX_ROUTING_KEY_BYTES {
            let line = self.outline.step_key(i, &["handler", "callable"]);
            let room = topology::MAX_ROUTING_KEY_BYTES - (key.len() - step.handler.callable.len());
            self.issue(
                line,
                format!(
                    "{label}: step {:?} has a handler.callable of {} bytes; steps are routed to workers by namespace and callable, which AMQP allows {} bytes, so shorten it to {room} bytes or fewer",
                    step.name,
                    step.handler.callable.len(),
                    topology::MAX_ROUTING_KEY_BYTES
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
            results_from: step.results_from.clone(),
        })
    }

    /// By step, the steps whose results its message carries: the ones its
    /// `results_from` names, each of which must be an ancestor, or every
    /// ancestor.
    fn carried(
        &mut self,
        label: &str,
        raw: &RawTemplate,
        index: &HashMap<&str, usize>,
        dag: &Dag,
    ) -> Vec<Vec<usize>> {
        let mut carried = Vec::with_capacity(raw.steps.len());
        for (i, step) in raw.steps.iter().enumerate() {
            let ancestors = dag.ancestors(i);
            let Some(named) = &step.results_from else {
                carried.push(ancestors.to_vec());
                continue;
            };
            let mut from = Vec::with_capacity(named.len());
            for name in named {
                let line = self.outline.step_key(i, &["results_from"]);
                match index.get(name.as_str()) {
                    Some(&a) if ancestors.contains(&a) => from.push(a),
                    Some(_) => {
                        let names: Vec<&str> =
                            ancestors.iter().map(|&a| raw.steps[a].name.as_str()).collect();
                        let fix = if names.is_empty() {
                            "it has no ancestors, so leave results_from out or empty".to_owned()
                        } else {
                            format!(
                                "name only steps it depends on, directly or not: {}",
                                quoted_list(&names)
                            )
                        };
                        self.issue(
                            line,
                            format!(
                                "{label}: step {:?} takes results_from {name:?}, which it does not depend on, so that result may not exist when it runs; {fix}",
                                step.name
                            ),
                        );
                    }
                    None => {
                        let names: Vec<&str> =
                            ancestors.iter().map(|&a| raw.steps[a].name.as_str()).collect();
                        let hint = closest(name, names.iter().copied())
                            .map(|s| format!(" (did you mean {s:?}?)"))
                            .unwrap_or_else(|| format!("; name its ancestors: {}", quoted_list(&names)));
                        self.issue(
                            line,
                            format!(
                                "{label}: step {:?} takes results_from unknown step {name:?}{hint}",
                                step.name
                            ),
                        );
                    }
                }
            }
            from.sort_unstable();
            from.dedup();
            carried.push(from);
        }
        carried
    }

    fn issue(&mut self, line: Option<usize>, message: String) {
        self.issues.push(TemplateIssue { line, message });
    }
}
