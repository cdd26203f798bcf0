# frozen_string_literal: true

module TaskerWorker
  # The span of one step-ready delivery, as every SDK records it: a CONSUMER
  # span `process <step>` (`process step` until its message is decoded),
  # child of the context in the message's `traceparent` and `tracestate`,
  # with the OpenTelemetry messaging attributes, the task's and the step's,
  # and the attempt's outcome (`tasker.step.outcome`: completed,
  # waiting_for_child, failed_retryable or failed_permanent); a failed
  # attempt sets the error status, with its error code.
  module DeliverySpan
    module_function

    # A started span for the delivery from `queue` (Bunny's delivery info and
    # message properties).
    def start(queue, info, properties)
      attributes = {
        'messaging.system' => 'rabbitmq',
        'messaging.operation.type' => 'process',
        'messaging.destination.name' => queue,
        'messaging.rabbitmq.destination.routing_key' => info.routing_key.to_s
      }
      message_id = properties.message_id.to_s
      attributes['messaging.message.id'] = message_id unless message_id.empty?
      Telemetry.tracer.start_span('process step', kind: :consumer, parent: Telemetry.extract(properties.headers),
                                                  attributes:)
    end

    # Names the span after `ready`'s step and adds what identifies it.
    def describe(span, ready)
      span.name = "process #{ready.step}"
      span.add_attributes('tasker.task.id' => ready.task_id, 'tasker.namespace' => ready.namespace,
                          'tasker.task.name' => ready.task_name, 'tasker.task.version' => ready.task_version,
                          'tasker.step.name' => ready.step, 'tasker.step.attempt' => ready.attempt)
    end

    # Records the outcome of the step result `result` (a decoded Hash).
    def record_outcome(span, result)
      case result['status']
      when 'completed', 'waiting_for_child' then span.set_attribute('tasker.step.outcome', result['status'])
      else
        error = result['error']
        span.set_attribute('tasker.step.outcome', error['retryable'] ? 'failed_retryable' : 'failed_permanent')
        span.error!(error['code'])
      end
    end
  end
end
