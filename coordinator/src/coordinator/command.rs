//! An operator's retry, resolve or cancel of a task (`tasker retry`,
//! `resolve`, `cancel`): carried out in one store call, its effects
//! published, then answered on the command's `reply_to`.

use std::collections::BTreeMap;

use lapin::message::Delivery;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{
    CommandReply, PROTOCOL_VERSION, StepState, TaskAction, TaskCommand, TaskStatus, TaskTemplate, message,
};
use tasker_runtime::broker;
use tasker_runtime::metrics;
use tasker_runtime::publisher::Outgoing;
use tracing::info;
use uuid::Uuid;

use super::Coordinator;
use super::finished::{Audience, count_finished};
use super::publish::ReadySteps;
use crate::Error;
use crate::store::{Operated, Operation, TaskSnapshot};

impl Coordinator {
    /// A task command from the requests queue.
    pub(super) async fn handle_command(&self, queue: &str, delivery: &Delivery) -> Result<(), Error> {
        let command: TaskCommand = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(c) => c,
            Err(e) => {
                return self
                    .dead_letter(delivery, queue, e.reason(), &e.to_string())
                    .await;
            }
        };
        tracing::Span::current().record("tasker.task.id", tracing::field::display(command.task_id));
        let reply = self.carry_out(&command).await?;
        if reply.accepted {
            info!(task_id = %command.task_id, action = ?command.action, message = %reply.message, "operator command carried out");
        } else {
            info!(task_id = %command.task_id, action = ?command.action, reason = %reply.message, "operator command refused");
        }
        if let Some(to) = delivery.properties.reply_to() {
            let mut properties = broker::properties(message_type::COMMAND_REPLY, Some(command.task_id));
            if let Some(c) = delivery.properties.correlation_id() {
                properties = properties.with_correlation_id(c.clone());
            }
            self.publisher
                .publish(Outgoing {
                    exchange: String::new(),
                    routing_key: to.to_string(),
                    payload: message::encode(&reply),
                    properties,
                    mandatory: false,
                })
                .await?;
        }
        self.acks.ack(delivery);
        Ok(())
    }

    /// Carries out `command`: the store's change, the steps it enqueued, the
    /// child tasks a cancel cancels too, and the task's report if it ended.
    async fn carry_out(&self, command: &TaskCommand) -> Result<CommandReply, Error> {
        let task_id = command.task_id;
        let Some(snapshot) = self.store.task(task_id).await? else {
            return Ok(refuse(
                task_id,
                format!(
                    "no task {task_id}; it never existed, or it finished more than the retention period ago"
                ),
            ));
        };
        let Ok(template) = self
            .templates
            .get(&snapshot.namespace, &snapshot.name, Some(&snapshot.version))
            .cloned()
        else {
            return Ok(refuse(
                task_id,
                format!(
                    "template {}/{}@{} is not loaded by this coordinator",
                    snapshot.namespace, snapshot.name, snapshot.version
                ),
            ));
        };
        let result_json = match &command.action {
            TaskAction::Resolve { result, .. } => result.to_string(),
            TaskAction::Retry { .. } | TaskAction::Cancel => String::new(),
        };
        let operation = match operation(&template, &command.action, &result_json) {
            Ok(operation) => operation,
            Err(reason) => return Ok(refuse(task_id, reason)),
        };
        let operated = self
            .store
            .operate(task_id, &template, operation, |step| self.lease(&template, step))
            .await?;
        let (status, ready, inputs, joins) = match operated {
            Operated::Refused(reason) => return Ok(refuse(task_id, reason)),
            Operated::Done {
                status,
                ready,
                inputs,
                joins,
            } => (status, ready, inputs, joins),
        };
        // The store has leased every step it enqueued; each attempt's are
        // published together.
        let mut by_attempt: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for r in &ready {
            by_attempt.entry(r.attempt).or_default().push(r.step);
        }
        for (attempt, steps) in &by_attempt {
            self.publish_steps(ReadySteps {
                template: &template,
                task_id,
                steps,
                attempt: *attempt,
                inputs: &inputs,
                joins: &joins,
            })
            .await?;
        }
        // Cancelling a task cancels the child tasks its steps wait for;
        // again for a redelivered command, since the first delivery may
        // have died before sending them.
        let children = match command.action {
            TaskAction::Cancel => self.cancel_children(&snapshot).await?,
            TaskAction::Retry { .. } | TaskAction::Resolve { .. } => Vec::new(),
        };
        if snapshot.status != TaskStatus::Running {
            // A retried or resolved task is in flight again.
            metrics::global()
                .tasks_in_flight
                .get_or_create(&metrics::task(&template.namespace, &template.name))
                .inc();
        }
        if status != TaskStatus::Running {
            self.publish_finished(task_id, Audience::Everyone).await?;
            count_finished(&template, status);
        }
        let started: Vec<String> = ready
            .iter()
            .map(|r| template.steps[r.step].name.clone())
            .collect();
        let message = reply_message(&command.action, status, &started, &snapshot, &children);
        Ok(CommandReply {
            protocol_version: PROTOCOL_VERSION,
            task_id,
            accepted: true,
            message,
            started,
            status: Some(status),
        })
    }

    /// Sends a cancel for the running child task of every step of `task`
    /// that waits for one, to the coordinators of the child's namespace,
    /// which cancel it as an operator's cancel would; the child then ends
    /// cancelled, and its report fails the step that waits for it. Gives
    /// back the children.
    async fn cancel_children(&self, task: &TaskSnapshot) -> Result<Vec<Uuid>, Error> {
        let waiting = task
            .steps
            .iter()
            .filter(|s| s.state == StepState::Enqueued)
            .filter_map(|s| s.child);
        let mut children = Vec::new();
        let mut commands = Vec::new();
        for child in waiting {
            let Some(snapshot) = self.store.task(child).await? else {
                continue;
            };
            if snapshot.status != TaskStatus::Running {
                continue; // Its report is on its way to the step.
            }
            info!(task_id = %task.task_id, child_task_id = %child, "cancelling the child task too");
            let cancel = TaskCommand {
                protocol_version: PROTOCOL_VERSION,
                task_id: child,
                action: TaskAction::Cancel,
            };
            commands.push(Outgoing {
                exchange: topology::REQUESTS_EXCHANGE.to_owned(),
                routing_key: snapshot.namespace,
                payload: message::encode(&cancel),
                properties: broker::properties(message_type::TASK_COMMAND, Some(child)),
                mandatory: true,
            });
            children.push(child);
        }
        self.publisher.publish_all(commands).await?;
        Ok(children)
    }
}

/// The store's operation for `action`, or why it is refused.
fn operation<'a>(
    template: &TaskTemplate,
    action: &TaskAction,
    result_json: &'a str,
) -> Result<Operation<'a>, String> {
    let index = |name: &str| {
        template.step_index(name).ok_or_else(|| {
            let names: Vec<&str> = template.steps.iter().map(|s| s.name.as_str()).collect();
            format!(
                "{} has no step {name:?}; its steps are {}",
                template.key(),
                names.join(", ")
            )
        })
    };
    Ok(match action {
        TaskAction::Cancel => Operation::Cancel,
        TaskAction::Retry { step: None } => Operation::Retry { step: None },
        TaskAction::Retry { step: Some(name) } => Operation::Retry {
            step: Some(index(name)?),
        },
        TaskAction::Resolve { step, .. } => Operation::Resolve {
            step: index(step)?,
            result: result_json,
        },
    })
}

/// The refusal of a command.
fn refuse(task_id: Uuid, message: String) -> CommandReply {
    CommandReply {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        accepted: false,
        message,
        started: Vec::new(),
        status: None,
    }
}

/// What an accepted command tells its operator.
fn reply_message(
    action: &TaskAction,
    status: TaskStatus,
    started: &[String],
    before: &TaskSnapshot,
    children: &[Uuid],
) -> String {
    let running = before
        .steps
        .iter()
        .filter(|s| s.state == StepState::Enqueued)
        .count();
    let cancelling_children = match children {
        [] => String::new(),
        ids => format!(
            "; its child task(s) {} are being cancelled",
            ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    match (action, started.is_empty()) {
        (TaskAction::Cancel, _) if status == TaskStatus::Cancelled => "cancelled".to_owned(),
        (TaskAction::Cancel, _) => format!(
            "cancelling: nothing starts any more; the task ends cancelled once its {running} running step(s) finish{cancelling_children}"
        ),
        (TaskAction::Retry { .. }, _) => format!("retrying; started {}", started.join(", ")),
        (TaskAction::Resolve { step, .. }, true) => format!("{step} resolved; nothing was waiting for it"),
        (TaskAction::Resolve { step, .. }, false) => {
            format!("{step} resolved; started {}", started.join(", "))
        }
    }
}
