//! The properties and headers every Tasker message carries.

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use tasker_protocol::PROTOCOL_VERSION;
use tasker_protocol::topology::{self, headers};
use uuid::Uuid;

/// Properties for a Tasker message: persistent, JSON, typed, with the
/// protocol version, the task id and the publish time in headers.
#[must_use]
pub fn properties(message_type: &str, task_id: Option<Uuid>) -> BasicProperties {
    let mut table = FieldTable::default();
    table.insert(
        headers::PROTOCOL_VERSION.into(),
        AMQPValue::LongUInt(PROTOCOL_VERSION),
    );
    table.insert(
        headers::PUBLISHED_AT_MS.into(),
        AMQPValue::LongLongInt(chrono::Utc::now().timestamp_millis()),
    );
    if let Some(id) = task_id {
        table.insert(
            headers::TASK_ID.into(),
            AMQPValue::LongString(id.to_string().into()),
        );
    }
    // The publishing span's trace context travels with the message.
    crate::telemetry::inject(&tracing::Span::current(), &mut table);
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(topology::CONTENT_TYPE.into())
        .with_type(message_type.into())
        .with_message_id(Uuid::new_v4().to_string().into())
        .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default())
        .with_headers(table)
}

/// When the message was published, from its `x-tasker-published-at-ms` header.
#[must_use]
pub fn published_at(delivery: &Delivery) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(integer_header(delivery, headers::PUBLISHED_AT_MS)?)
}

/// How many times RabbitMQ says this message was delivered before.
#[must_use]
pub fn delivery_count(delivery: &Delivery) -> u64 {
    integer_header(delivery, headers::DELIVERY_COUNT)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// What the publisher's `x-tasker-protocol-version` header says: `None`
/// without one, `Some(None)` for one that is not an integer.
#[must_use]
pub fn protocol_version_header(delivery: &Delivery) -> Option<Option<i64>> {
    header(delivery, headers::PROTOCOL_VERSION)?;
    Some(integer_header(delivery, headers::PROTOCOL_VERSION))
}

fn header(delivery: &Delivery, name: &str) -> Option<AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
}

/// Header `name` as an integer, whichever AMQP integer type carries it.
fn integer_header(delivery: &Delivery, name: &str) -> Option<i64> {
    match header(delivery, name)? {
        AMQPValue::LongLongInt(n) => Some(n),
        AMQPValue::LongInt(n) => Some(i64::from(n)),
        AMQPValue::LongUInt(n) => Some(i64::from(n)),
        AMQPValue::ShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(n)),
        AMQPValue::ShortShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(n)),
        _ => None,
    }
}
