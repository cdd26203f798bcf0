//! The faults of a cluster's chaos run, on the servers `deploy/dev cluster`
//! starts: a RabbitMQ node killed or stopped, and a Redis master killed, so
//! that its replica takes over.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis::cluster_routing::Slot;

use super::fault::{dev, signal};

/// How long a Redis replica may take to be promoted after its master died:
/// the nodes' timeout (3 s in `deploy/dev cluster`), then an election.
const PROMOTION_LIMIT: Duration = Duration::from_secs(30);

/// The AMQP ports of the RabbitMQ nodes `TASKER_AMQP_URL` names.
#[must_use]
pub fn rabbitmq_nodes() -> Vec<u16> {
    tasker_runtime::broker::broker_urls(&crate::amqp_url())
        .into_iter()
        .filter_map(|u| url::Url::parse(u).ok()?.port())
        .collect()
}

/// The AMQP port of the node that leads `queue`.
///
/// # Errors
///
/// If `deploy/dev cluster leader` fails or prints no port.
pub async fn rabbitmq_leader(script: &Path, queue: &str) -> anyhow::Result<u16> {
    let out = dev(script, &["cluster", "leader", queue]).await?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.parse()
        .with_context(|| format!("`deploy/dev cluster leader {queue}` printed {text:?}, not a port"))
}

/// Kills the RabbitMQ node on `port` with SIGKILL.
///
/// # Errors
///
/// If it is not running, or cannot be killed.
pub async fn kill_rabbitmq_node(script: &Path, port: u16) -> anyhow::Result<()> {
    let pid = pid(script, "rabbitmq", port).await?;
    signal(pid, "KILL")
}

/// Stops the RabbitMQ node on `port` cleanly.
///
/// # Errors
///
/// If `deploy/dev cluster stop-node` fails.
pub async fn stop_rabbitmq_node(script: &Path, port: u16) -> anyhow::Result<()> {
    dev(script, &["cluster", "stop-node", &port.to_string()])
        .await
        .map(|_| ())
}

/// Starts every server of the cluster that is not running; a node that
/// comes back rejoins, a Redis master as its successor's replica.
///
/// # Errors
///
/// If `deploy/dev cluster servers` fails.
pub async fn start_missing_servers(script: &Path) -> anyhow::Result<()> {
    dev(script, &["cluster", "servers"]).await.map(|_| ())
}

/// The PID of the cluster's `server` (`rabbitmq` or `redis`) on `port`.
///
/// # Errors
///
/// If it is not running.
pub async fn pid(script: &Path, server: &str, port: u16) -> anyhow::Result<u32> {
    let out = dev(script, &["cluster", "pid", server, &port.to_string()]).await?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.parse()
        .with_context(|| format!("`deploy/dev cluster pid {server} {port}` printed {text:?}, not a PID"))
}

/// Kills the Redis master that serves `key` with SIGKILL, and waits until
/// a replica has taken its slots over; gives back the dead master's port.
///
/// # Errors
///
/// If the cluster cannot be read, the master cannot be killed, or no
/// replica takes over within [`PROMOTION_LIMIT`].
pub async fn kill_redis_master(script: &Path, key: &str) -> anyhow::Result<u16> {
    let master = redis_master(key).await?;
    signal(pid(script, "redis", master).await?, "KILL")?;
    wait_for_new_master(key, master).await?;
    Ok(master)
}

/// The port of the Redis master that serves `key`.
///
/// # Errors
///
/// If the cluster cannot be read, or names no master for it.
pub async fn redis_master(key: &str) -> anyhow::Result<u16> {
    let slot = slot_number(key);
    master_of(&nodes().await?, slot).with_context(|| format!("no Redis master serves slot {slot}"))
}

/// The port of the Redis master that serves each of `keys`.
///
/// # Errors
///
/// If the cluster cannot be read, or names no master for one of them.
pub async fn redis_masters(keys: &[String]) -> anyhow::Result<Vec<u16>> {
    let listing = nodes().await?;
    keys.iter()
        .map(|key| {
            let slot = slot_number(key);
            master_of(&listing, slot).with_context(|| format!("no Redis master serves slot {slot}"))
        })
        .collect()
}

/// The port of a replica of the Redis master on `master`.
///
/// # Errors
///
/// If the cluster cannot be read, or names no replica of it.
pub async fn redis_replica(master: u16) -> anyhow::Result<u16> {
    let listing = nodes().await?;
    let port_of = |fields: &[&str]| -> Option<u16> {
        fields.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()
    };
    let lines: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    let id = lines
        .iter()
        .find(|f| port_of(f) == Some(master))
        .and_then(|f| f.first())
        .with_context(|| format!("CLUSTER NODES lists no node on port {master}"))?;
    lines
        .iter()
        .find(|f| f.get(3) == Some(id) && f.get(2).is_some_and(|flags| flags.contains("slave")))
        .and_then(|f| port_of(f))
        .with_context(|| format!("the Redis master on port {master} has no replica"))
}

/// Waits until a master other than the one on `old` serves `key`.
///
/// # Errors
///
/// If none does within [`PROMOTION_LIMIT`].
pub async fn wait_for_new_master(key: &str, old: u16) -> anyhow::Result<()> {
    let (slot, master) = (slot_number(key), old);
    let deadline = Instant::now() + PROMOTION_LIMIT;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Asked of any node the connection reaches: the dead one does not
        // answer, and a node that has not noticed yet still names it.
        if let Ok(listing) = nodes().await
            && master_of(&listing, slot).is_some_and(|m| m != master)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no replica took over slot {slot} from the master on port {master} within {} s",
                PROMOTION_LIMIT.as_secs()
            );
        }
    }
}

/// The slot of `key`, as a number.
fn slot_number(key: &str) -> u16 {
    let slot = Slot::for_key(key);
    (0..16384)
        .find(|&n| Slot::new(n) == Some(slot))
        .expect("a slot is below 16384")
}

/// `CLUSTER NODES`, as the first node of `TASKER_REDIS_URL` that answers
/// within a second says. Asked of each node directly: a cluster
/// connection may spend its timeouts on a node that just died.
async fn nodes() -> anyhow::Result<String> {
    for url in crate::redis_url().split(',') {
        let ask = async {
            let mut node = redis::Client::open(url.trim())?
                .get_multiplexed_async_connection()
                .await?;
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut node)
                .await
        };
        if let Ok(Ok(listing)) = tokio::time::timeout(Duration::from_secs(1), ask).await {
            return Ok(listing);
        }
    }
    bail!("no node of TASKER_REDIS_URL answered CLUSTER NODES")
}

/// The port of the master that `CLUSTER NODES` says serves `slot`, unless
/// it is marked failed.
fn master_of(listing: &str, slot: u16) -> Option<u16> {
    listing.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let mut ends = range.splitn(2, '-').map(|n| n.parse::<u16>());
            match (ends.next(), ends.next()) {
                (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                (Some(Ok(a)), None) => a == slot,
                _ => false,
            }
        });
        if !serves {
            return None;
        }
        let address = fields.get(1)?.split('@').next()?;
        address.rsplit(':').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_of_a_slot_is_read_from_cluster_nodes() {
        let listing = "\
a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7002@17002 master,fail - 0 0 2 connected 5461-10922
c 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
d 127.0.0.1:7004@17004 master - 0 0 4 connected 5461-10922
";
        assert_eq!(master_of(listing, 0), Some(7001));
        assert_eq!(master_of(listing, 6000), Some(7004));
        assert_eq!(master_of(listing, 16383), Some(7003));
        assert_eq!(master_of("", 1), None);
        assert_eq!(slot_number("{0}"), slot_number("x{0}y"));
    }
}
