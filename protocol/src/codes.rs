//! The short, stable codes Tasker itself writes on the wire: the error codes
//! of the step failures it reports, and the reasons it gives a message it
//! moves to the dead-letter queue.
//!
//! A handler's own error codes (`INVALID_EMAIL`, `GATEWAY_TIMEOUT`) are free
//! text and stay strings in [`StepFailure::code`](crate::StepFailure); the
//! codes here are the ones every SDK and every dashboard must spell alike.
//! Task and step states are [`TaskStatus`](crate::TaskStatus) and
//! [`StepState`](crate::StepState), spelled by their `as_str`.

use std::fmt;

/// The code of a step failure that Tasker reports rather than a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The attempt ran past its `timeout_seconds`, or no result came within
    /// its lease. Retryable.
    Timeout,
    /// The worker has no handler for the step's `callable`. Permanent.
    HandlerNotFound,
    /// The handler panicked (or raised outside the SDK's error types).
    /// Permanent.
    HandlerPanic,
    /// The step's input is missing something the handler reads, or it has
    /// the wrong shape. Permanent.
    InvalidInput,
    /// The handler's result cannot be written as JSON. Permanent.
    InvalidResult,
    /// The handler says it waits for a child task it did not start.
    /// Permanent.
    NoChildTask,
    /// The request for a child task was not confirmed by the broker.
    /// Retryable.
    ChildNotStarted,
    /// The step's child task failed. Permanent.
    ChildTaskFailed,
    /// The step's child task was cancelled. Permanent.
    ChildTaskCancelled,
    /// The coordinator of the step's child task refused the request.
    /// Permanent.
    ChildTaskRejected,
    /// The step's input (its context and the results it carries) makes a
    /// step-ready message over the size limit: the coordinator fails the
    /// step rather than publish it. Permanent.
    InputTooLarge,
    /// The handler's result makes a step result over the size limit: the
    /// worker reports this instead. Permanent.
    ResultTooLarge,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [Self; 12] = [
        Self::Timeout,
        Self::HandlerNotFound,
        Self::HandlerPanic,
        Self::InvalidInput,
        Self::InvalidResult,
        Self::NoChildTask,
        Self::ChildNotStarted,
        Self::ChildTaskFailed,
        Self::ChildTaskCancelled,
        Self::ChildTaskRejected,
        Self::InputTooLarge,
        Self::ResultTooLarge,
    ];

    /// The code as the wire spells it, e.g. `handler_not_found`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::HandlerNotFound => "handler_not_found",
            Self::HandlerPanic => "handler_panic",
            Self::InvalidInput => "invalid_input",
            Self::InvalidResult => "invalid_result",
            Self::NoChildTask => "no_child_task",
            Self::ChildNotStarted => "child_not_started",
            Self::ChildTaskFailed => "child_task_failed",
            Self::ChildTaskCancelled => "child_task_cancelled",
            Self::ChildTaskRejected => "child_task_rejected",
            Self::InputTooLarge => "input_too_large",
            Self::ResultTooLarge => "result_too_large",
        }
    }

    /// Whether a failure with this code may be retried.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        match self {
            Self::Timeout | Self::ChildNotStarted => true,
            Self::HandlerNotFound
            | Self::HandlerPanic
            | Self::InvalidInput
            | Self::InvalidResult
            | Self::NoChildTask
            | Self::ChildTaskFailed
            | Self::ChildTaskCancelled
            | Self::ChildTaskRejected
            | Self::InputTooLarge
            | Self::ResultTooLarge => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> Self {
        code.as_str().to_owned()
    }
}

/// Why a message went to the dead-letter queue: the code that starts its
/// `x-tasker-dead-letter-reason` header and labels the dead-letter metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The payload is over the consumer's size limit.
    TooLarge,
    /// The payload is not JSON.
    NotJson,
    /// The payload is of another protocol version.
    WrongProtocolVersion,
    /// The payload is JSON of the right version but not the message's shape.
    InvalidMessage,
    /// RabbitMQ delivered the message more often than the consumer allows:
    /// it probably crashes its consumer.
    RedeliveryLimit,
    /// The coordinator met an error that retrying cannot fix.
    Unprocessable,
    /// A step result names a template version this coordinator does not load.
    TemplateNotLoaded,
    /// A step result names a step its template does not have.
    UnknownStep,
    /// A task request was rejected; the code says why.
    Rejected(crate::RejectCode),
}

impl DeadLetterReason {
    /// The reason as the header spells it, e.g. `not_json`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotJson => "not_json",
            Self::WrongProtocolVersion => "wrong_protocol_version",
            Self::InvalidMessage => "invalid_message",
            Self::RedeliveryLimit => "redelivery_limit",
            Self::Unprocessable => "unprocessable",
            Self::TemplateNotLoaded => "template_not_loaded",
            Self::UnknownStep => "unknown_step",
            Self::Rejected(code) => code.as_str(),
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn error_codes_are_distinct_snake_case_words() {
        let spelled: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(spelled.len(), ErrorCode::ALL.len());
        for code in spelled {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
    }

    #[test]
    fn only_timeouts_and_unsent_children_are_retried() {
        let retryable: Vec<ErrorCode> = ErrorCode::ALL.into_iter().filter(|c| c.is_retryable()).collect();
        assert_eq!(retryable, [ErrorCode::Timeout, ErrorCode::ChildNotStarted]);
    }

    #[test]
    fn a_rejection_dead_letters_under_its_reject_code() {
        let reason = DeadLetterReason::Rejected(crate::RejectCode::UnknownTemplate);
        assert_eq!(reason.as_str(), "unknown_template");
    }
}
