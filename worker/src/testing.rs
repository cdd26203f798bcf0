//! Running a template's steps through handlers in-process, for unit tests
//! of a worker's handlers: no broker, no store.
//!
//! [`run`] does what the coordinator and a worker would: steps in
//! dependency order, each handed its ancestors' results, a retryable failure
//! tried again while attempts remain. It checks the handlers against the
//! template as written; the engine's own guarantees are tested end to end.
//!
//! A step whose handler starts a child task stops the run there, with
//! [`StepError::WaitingForChild`], and the child's request is kept in
//! [`Run::children`]; give the step a stand-in result to run past it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tasker_protocol::{PROTOCOL_VERSION, StepReady, TaskRequest, TaskTemplate};

use tasker_protocol::ErrorCode;

use crate::handler::Children;
use crate::{StepContext, StepError, StepHandler};

/// How a [`run`] went.
pub struct Run {
    /// Each completed step's result.
    pub results: BTreeMap<String, Value>,
    /// The attempts each step that ran took.
    pub attempts: BTreeMap<String, u32>,
    /// The step that failed, and how.
    pub failed: Option<(String, StepError)>,
    /// The child task each step asked for, by step name.
    pub children: BTreeMap<String, TaskRequest>,
}

impl Run {
    /// The result of `step`.
    ///
    /// # Panics
    ///
    /// If the step has none, saying which step failed.
    #[must_use]
    pub fn result(&self, step: &str) -> &Value {
        self.results
            .get(step)
            .unwrap_or_else(|| panic!("{step} has no result; failed: {:?}", self.failed))
    }

    /// The step that failed and its error code.
    ///
    /// # Panics
    ///
    /// If no step failed.
    #[must_use]
    pub fn failure(&self) -> (&str, &str) {
        let (step, error) = self.failed.as_ref().expect("the task should fail");
        (step.as_str(), error.code())
    }
}

/// Parses a template.
///
/// # Panics
///
/// If it is not valid, with the problems found.
#[must_use]
pub fn template(yaml: &str) -> TaskTemplate {
    TaskTemplate::from_yaml("template.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a task of `template` with `context` through `handlers` (callable,
/// handler); `stand_ins` gives the result of steps that are not run.
///
/// # Panics
///
/// If a step-ready message cannot be built, which means a bug here.
pub async fn run(
    template: &TaskTemplate,
    handlers: &[(&str, Box<dyn StepHandler>)],
    context: &Value,
    stand_ins: &[(&str, Value)],
) -> Run {
    let mut run = Run {
        results: BTreeMap::new(),
        attempts: BTreeMap::new(),
        failed: None,
        children: BTreeMap::new(),
    };
    for &i in template.dag.topological_order() {
        let step = &template.steps[i];
        if let Some((_, result)) = stand_ins.iter().find(|(name, _)| *name == step.name) {
            run.results.insert(step.name.clone(), result.clone());
            continue;
        }
        let Some((_, handler)) = handlers.iter().find(|(callable, _)| *callable == step.callable) else {
            let error = StepError::permanent(
                ErrorCode::HandlerNotFound,
                format!("no handler for {}", step.callable),
            );
            run.failed = Some((step.name.clone(), error));
            return run;
        };
        let ancestors: BTreeMap<&str, &Value> = template
            .dag
            .ancestors(i)
            .iter()
            .map(|&a| {
                let name = template.steps[a].name.as_str();
                (name, &run.results[name])
            })
            .collect();
        for attempt in 1..=step.retry.max_attempts {
            let ready = json!({
                "protocol_version": PROTOCOL_VERSION,
                "task_id": "5b0c7d1e-8f1a-4c2b-9d3e-0a1b2c3d4e5f",
                "namespace": template.namespace,
                "task_name": template.name,
                "task_version": template.version.to_string(),
                "step": step.name,
                "callable": step.callable,
                "attempt": attempt,
                "max_attempts": step.retry.max_attempts,
                "context": context,
                "initialization": step.initialization,
                "dependency_results": ancestors,
            });
            // The context and results are raw JSON, which only parsing text yields.
            let ready: StepReady = serde_json::from_str(&ready.to_string()).expect("a step-ready message");
            let requested = Arc::new(Mutex::new(Vec::new()));
            let ctx = StepContext::with_children(ready, Children::Recorded(requested.clone()))
                .expect("an object context");
            run.attempts.insert(step.name.clone(), attempt);
            let outcome = handler.call(&ctx).await;
            if let Some(child) = requested.lock().expect("child list poisoned").pop() {
                run.children.insert(step.name.clone(), child);
            }
            match outcome {
                Ok(result) => {
                    run.results.insert(step.name.clone(), result);
                    break;
                }
                Err(error)
                    if error.is_retryable() && step.retry.retryable && attempt < step.retry.max_attempts => {}
                Err(error) => {
                    run.failed = Some((step.name.clone(), error));
                    return run;
                }
            }
        }
    }
    run
}
