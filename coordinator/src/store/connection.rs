//! The store's connection: to a single Redis, or to a Redis Cluster, and
//! how a write is made to survive a failover.
//!
//! `TASKER_REDIS_URL` names one Redis, or any nodes of a cluster separated
//! by commas. Which of the two it is, Redis says (`INFO cluster`): the
//! URL looks the same. On a cluster the connection follows `MOVED` and
//! `ASK` redirects and slot changes (redis-rs's cluster client).
//!
//! Redis replicates asynchronously: a master can acknowledge a write and
//! die before a replica has it. With [`Durability`] on, every script that
//! writes is followed by `WAIT`, on the same connection to the same master,
//! and the write counts as done only once enough replicas acknowledged it.
//! Since the coordinator acks a message only after the writes it caused are
//! done, a failover cannot lose the effect of a message that was acked.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tasker_runtime::secrets::TlsPem;

use crate::Error;

/// How long a connection attempt, and a reply, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many replicas must hold a write before the message that caused it
/// is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One replica when every master has one when the coordinator connects;
    /// otherwise none.
    Auto,
    /// This many replicas; 0 waits for none.
    Replicas(u16),
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Replicas(0)),
            n => n.parse().map(Self::Replicas).map_err(|_| {
                format!("'{s}' is not a number of replicas: give 'auto', 'off' or a count such as 1")
            }),
        }
    }
}

/// A connection to a single Redis or to a cluster. Cloning shares it; it
/// reconnects by itself.
#[derive(Clone)]
pub enum Conn {
    /// A single Redis.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What connecting found.
pub struct Connected {
    /// The connection.
    pub conn: Conn,
    /// The fewest replicas any master has.
    pub replicas: usize,
}

impl Conn {
    /// Connects to the Redis or the cluster `urls` name; `fail` turns a
    /// redis-rs error into the store's.
    pub async fn open(
        urls: &[&str],
        tls: &TlsPem,
        fail: impl Fn(redis::RedisError) -> Error,
    ) -> Result<Connected, Error> {
        // One plain connection first, to the first node that answers: a
        // refused login or an absent server shows at once, where the
        // managers would try several times over seconds before saying so;
        // and a cluster's node that is down does not stop the start.
        let mut reached = None;
        let mut last = None;
        for url in urls {
            let client = if url.starts_with("rediss://") {
                redis::Client::build_with_tls(*url, certificates(tls))
            } else {
                redis::Client::open(*url)
            }
            .map_err(&fail)?;
            match client.get_multiplexed_async_connection().await {
                Ok(probe) => {
                    reached = Some((client, probe));
                    break;
                }
                Err(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => return Err(fail(e)),
                Err(e) => last = Some(e),
            }
        }
        let Some((first, mut probe)) = reached else {
            return Err(fail(last.expect("at least one URL was tried")));
        };
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut probe)
            .await
            .map_err(&fail)?;
        if info.contains("cluster_enabled:1") {
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut probe)
                .await
                .map_err(&fail)?;
            let mut builder = redis::cluster::ClusterClient::builder(urls.to_vec())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT);
            if urls.iter().any(|u| u.starts_with("rediss://")) {
                builder = builder.certs(certificates(tls));
            }
            let client = builder.build().map_err(&fail)?;
            let conn = client.get_async_connection().await.map_err(&fail)?;
            return Ok(Connected {
                conn: Self::Cluster(conn),
                replicas: fewest_replicas(&nodes),
            });
        }
        if urls.len() > 1 {
            return Err(Error::Config(format!(
                "TASKER_REDIS_URL lists {} addresses, which only a Redis Cluster takes, but {} is not a cluster node \
                 (its INFO says cluster_enabled:0); give one address for a single Redis",
                urls.len(),
                tasker_runtime::broker::redact_url(urls[0]),
            )));
        }
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut probe)
            .await
            .map_err(&fail)?;
        let replicas = replication
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_with_config(first, config)
            .await
            .map_err(&fail)?;
        Ok(Connected {
            conn: Self::Single(conn),
            replicas,
        })
    }

    /// Whether this is a cluster's connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Waits until `replicas` replicas hold every write this connection
    /// made to the master of `slot` (on a single Redis, to the Redis), or
    /// `timeout` passes; gives back how many did.
    pub async fn wait(&self, slot: Slot, replicas: u16, timeout: Duration) -> redis::RedisResult<u16> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        match self.clone() {
            Self::Single(mut c) => wait.query_async(&mut c).await,
            Self::Cluster(mut c) => {
                let route = Route::with_slot(slot, SlotAddr::Master);
                let reply = c
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

/// The fewest replicas a master that serves slots has, as `CLUSTER NODES`
/// lists them (`<id> <addr> <flags> <master id> ... <slots>`); failed
/// nodes do not count.
fn fewest_replicas(nodes: &str) -> usize {
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split_whitespace().collect()).collect();
    let flags = |l: &[&str], flag: &str| l.get(2).is_some_and(|f| f.split(',').any(|x| x == flag));
    lines
        .iter()
        .filter(|l| flags(l, "master") && !flags(l, "fail") && l.len() > 8)
        .map(|master| {
            lines
                .iter()
                .filter(|l| flags(l, "slave") && !flags(l, "fail") && l.get(3) == Some(&master[0]))
                .count()
        })
        .min()
        .unwrap_or(0)
}

/// The CA (trusted alone, in place of the system's roots) and the client
/// certificate for `rediss://`, from `TASKER_TLS_*_FILE`.
fn certificates(tls: &TlsPem) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: tls
            .identity
            .clone()
            .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                client_cert,
                client_key,
            }),
        root_cert: tls.ca.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_reads_auto_off_and_a_count() {
        assert_eq!("auto".parse(), Ok(Durability::Auto));
        assert_eq!("off".parse(), Ok(Durability::Replicas(0)));
        assert_eq!("2".parse(), Ok(Durability::Replicas(2)));
        let wrong = "some".parse::<Durability>().unwrap_err();
        assert!(wrong.contains("'auto', 'off'"), "{wrong}");
    }

    #[test]
    fn the_fewest_replicas_of_the_masters_that_serve_slots() {
        let nodes = "\
a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
c 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
d 127.0.0.1:7004@17004 slave a 0 0 1 connected
e 127.0.0.1:7005@17005 slave b 0 0 2 connected
f 127.0.0.1:7006@17006 slave,fail c 0 0 3 connected
";
        assert_eq!(fewest_replicas(nodes), 0);
        let healed = nodes.replace("slave,fail c", "slave c");
        assert_eq!(fewest_replicas(&healed), 1);
        // A master without slots (just added, or failed over and emptied)
        // does not need a replica.
        let spare = format!("{healed}g 127.0.0.1:7007@17007 master - 0 0 4 connected\n");
        assert_eq!(fewest_replicas(&spare), 1);
    }
}
