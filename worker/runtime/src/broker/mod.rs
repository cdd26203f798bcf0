//! What every Tasker process does with RabbitMQ: connect to a node (of a
//! cluster's several: `urls`), declare the topology (`declare`), and read
//! and write the properties every message carries (`message`).
//! Publishing is [`crate::publisher`]'s.
//!
//! Publishing and consuming use separate channels, so a slow consumer never
//! holds up a publish and a publisher's flow control never stalls delivery.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::Error;
use crate::publisher::Publisher;
use crate::secrets::TlsFiles;

mod declare;
mod message;
mod urls;

pub use message::{delivery_count, properties, protocol_version_header, published_at};
pub use urls::{broker_urls, redact_url};

/// How often a Tasker process and the broker tell each other they are
/// alive, unless the URL says otherwise (`?heartbeat=`). RabbitMQ closes a
/// connection it has heard nothing on for about two and a half heartbeats
/// (13 s at 5 s, measured) and hands the unacked deliveries to other
/// consumers: this is what bounds how long a frozen process holds its work.
/// RabbitMQ's own default, 60 s, let a frozen process hold it for three
/// minutes.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// What [`Broker::queue_counts`] tells of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages waiting to be delivered (not those delivered and unacked).
    pub ready: u32,
    /// Consumers now.
    pub consumers: u32,
}

/// A connection to RabbitMQ, and the URL it was made to, for messages.
pub struct Broker {
    connection: Connection,
    url: String,
}

impl Broker {
    /// Connects to `url` with the [`DEFAULT_HEARTBEAT`]; `name` shows in the
    /// broker's connection list.
    ///
    /// # Errors
    ///
    /// As [`Broker::connect_with_heartbeat`].
    pub async fn connect(url: &str, name: &str) -> Result<Self, Error> {
        Self::connect_with_heartbeat(url, name, DEFAULT_HEARTBEAT).await
    }

    /// Connects to `url`, asking for a heartbeat every `heartbeat` (whole
    /// seconds; zero turns heartbeats off) unless the URL asks for its own
    /// with `?heartbeat=`.
    ///
    /// `url` may name several nodes of a cluster, separated by commas
    /// ([`broker_urls`]). Each connection tries them in turn: a process
    /// starts at a random one, and each connection one further along the
    /// list than the process's previous one, so that connections spread
    /// over the nodes and a reconnection after a node died starts with
    /// another one.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Refused`] if a broker refuses the login or the
    /// vhost (the others would too: a cluster shares its users), and
    /// [`Error::Config`] if a URL is not an AMQP URL. Returns [`Error::Amqp`]
    /// if no broker can be reached, naming every URL tried and the last
    /// error.
    pub async fn connect_with_heartbeat(url: &str, name: &str, heartbeat: Duration) -> Result<Self, Error> {
        // Where this process starts in the list: random, so that processes
        // spread over the nodes; then one further along per connection.
        static START: OnceLock<usize> = OnceLock::new();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = crate::secrets::with_password_from_env(url, "TASKER_AMQP_PASSWORD")?;
        let tls = crate::secrets::TlsFiles::from_env()?;
        let urls = broker_urls(&url);
        if urls.is_empty() {
            return Err(Error::Config(
                "no RabbitMQ URL given: set TASKER_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f"
                    .to_owned(),
            ));
        }
        // A mistyped URL is a mistake now, not on the reconnection that
        // first reaches it.
        for url in &urls {
            url.parse::<AMQPUri>()
                .map_err(|e| Error::Config(format!("{} is not an AMQP URL: {e}", redact_url(url))))?;
        }
        let start = *START.get_or_init(|| rand::random_range(0..1024));
        let first = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % urls.len();
        let mut unreachable = Vec::new();
        let mut last = None;
        for url in urls.iter().cycle().skip(first).take(urls.len()) {
            match Self::connect_one(url, name, heartbeat, &tls).await {
                Ok(broker) => return Ok(broker),
                Err(Error::Amqp { url, source }) => {
                    unreachable.push(url);
                    last = Some(source);
                }
                Err(refused_or_invalid) => return Err(refused_or_invalid),
            }
        }
        Err(Error::Amqp {
            url: unreachable.join(", "),
            source: last.expect("at least one URL was tried"),
        })
    }

    /// Connects to one node, over TLS with `tls`'s files for `amqps://`.
    async fn connect_one(url: &str, name: &str, heartbeat: Duration, tls: &TlsFiles) -> Result<Self, Error> {
        let redacted = redact_url(url);
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e| Error::Config(format!("{redacted} is not an AMQP URL: {e}")))?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
        }
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let secure = uri.scheme == AMQPScheme::AMQPS;
        let config = if secure {
            tls_config(tls)?
        } else {
            OwnedTLSConfig::default()
        };
        let runtime = lapin::runtime::default_runtime().map_err(|source| Error::Amqp {
            url: redacted.clone(),
            source,
        })?;
        let connection = Connection::connect_uri_with_config(uri, properties, config, runtime)
            .await
            .map_err(|source| match refusal(&source) {
                Some(reason) => Error::Refused {
                    url: redacted.clone(),
                    reason,
                },
                None if secure && is_tls_failure(&source) => Error::Tls {
                    url: redacted.clone(),
                    source,
                },
                None => Error::Amqp {
                    url: redacted.clone(),
                    source,
                },
            })?;
        Ok(Self {
            connection,
            url: redacted,
        })
    }

    /// The URL of the node this connection reached, with any password
    /// masked.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection is still usable.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Opens a channel.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn channel(&self) -> Result<Channel, Error> {
        self.connection.create_channel().await.map_err(|e| self.error(e))
    }

    /// How many messages wait in `queue` (ready, not delivered) and how
    /// many consumers it has now; `None` if there is no such queue. The
    /// question has a channel of its own, since asking about a queue that
    /// does not exist closes the channel.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn queue_counts(&self, queue: &str) -> Result<Option<QueueCounts>, Error> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(declared) => {
                let _ = channel.close(200, "done".into()).await;
                Ok(Some(QueueCounts {
                    ready: declared.message_count(),
                    consumers: declared.consumer_count(),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Opens the channels of a [`Publisher`], in confirm mode.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn publisher(&self) -> Result<Publisher, Error> {
        let channel = self.confirm_channel().await?;
        let mut lanes = Vec::with_capacity(crate::publisher::MANDATORY_LANES);
        for _ in 0..crate::publisher::MANDATORY_LANES {
            lanes.push(self.confirm_channel().await?);
        }
        Ok(Publisher::new(channel, lanes, self.url.clone()))
    }

    async fn confirm_channel(&self) -> Result<Channel, Error> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error(e))?;
        Ok(channel)
    }

    /// Closes the connection; unacked deliveries go back to their queues.
    pub async fn close(&self) {
        // The connection may already be gone; there is nothing to do then.
        let _ = self.connection.close(200, "closing".into()).await;
    }

    /// Wraps a lapin error with the broker's URL.
    #[must_use]
    pub fn error(&self, source: lapin::Error) -> Error {
        Error::Amqp {
            url: self.url.clone(),
            source,
        }
    }
}

/// What the broker said when it refused a connection's login
/// (`ACCESS_REFUSED`) or vhost (`NOT_ALLOWED`); `None` for any other error,
/// which may pass.
fn refusal(error: &lapin::Error) -> Option<String> {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else {
        return None;
    };
    match amqp.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
        | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Some(amqp.get_message().to_string()),
        AMQPErrorKind::Soft(_) | AMQPErrorKind::Hard(_) => None,
    }
}

/// Whether the broker answered that what was asked for does not exist.
fn is_precondition_failed(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

/// The TLS settings of a connection to `amqps://`: the CA, trusted besides
/// the system's roots, and the client certificate.
fn tls_config(tls: &TlsFiles) -> Result<OwnedTLSConfig, Error> {
    let pem = tls.read()?;
    Ok(OwnedTLSConfig {
        identity: pem.identity.map(|(pem, key)| OwnedIdentity::PKCS8 { pem, key }),
        cert_chain: pem
            .ca
            .map(|ca| {
                String::from_utf8(ca).map_err(|_| {
                    Error::Config("TASKER_TLS_CA_FILE is not a PEM file: it is not text".to_owned())
                })
            })
            .transpose()?,
    })
}

/// Whether a connection failed in its TLS handshake (an unknown CA, a
/// missing client certificate) rather than, say, finding no one there.
fn is_tls_failure(error: &lapin::Error) -> bool {
    let text = format!("{error:?}").to_ascii_lowercase();
    ["certificate", "handshake", "tls", "alert"]
        .iter()
        .any(|w| text.contains(w))
}

fn is_access_refused(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)))
}

fn is_not_found(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}
