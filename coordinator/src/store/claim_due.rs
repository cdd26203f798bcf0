//! `claim_due.lua`: the sweeper claims the retries that are due and the
//! leases that ran out, one coordinator at a time.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::keys::{Shard, StepRef};
use super::script::LuaScript;
use super::{Store, millis_of};
use crate::Error;

/// A claim waits for no replica: a claim lost in a failover lets another
/// coordinator claim the entry again, and the scripts that act on it check
/// the step's state and attempt, so acting twice changes nothing.
static CLAIM_DUE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("claim_due", 1, include_str!("claim_due.lua")).without_replicas());

/// The arguments, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args {
    now: i64,
    hold_ms: u64,
    limit: usize,
}

/// The reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[serde(default)]
    claimed: Vec<String>,
}

/// What a claim took: the entries that could be read, each held by this
/// coordinator until it ends the claim with [`Store::end_claim`].
#[derive(Debug, Default)]
pub struct Claimed {
    /// The sorted set claimed from.
    pub key: String,
    /// The entries.
    pub entries: Vec<StepRef>,
}

impl Store {
    /// Claims up to `limit` retries of `shard`'s tasks of `namespace` that
    /// are due, holding each for `hold`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn claim_due_retries(
        &self,
        namespace: &str,
        shard: Shard,
        hold: Duration,
        limit: usize,
    ) -> Result<Claimed, Error> {
        self.claim(self.keys.schedule(shard, namespace), hold, limit)
            .await
    }

    /// Claims up to `limit` attempts of `shard`'s tasks of `namespace` whose
    /// lease has run out, holding each for `hold`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn claim_expired_leases(
        &self,
        namespace: &str,
        shard: Shard,
        hold: Duration,
        limit: usize,
    ) -> Result<Claimed, Error> {
        self.claim(self.keys.leases(shard, namespace), hold, limit).await
    }

    pub(super) async fn claim(&self, key: String, hold: Duration, limit: usize) -> Result<Claimed, Error> {
        let args = Args {
            now: Utc::now().timestamp_millis(),
            hold_ms: millis_of(hold),
            limit,
        };
        let reply: Reply = CLAIM_DUE
            .call_one(self, std::slice::from_ref(&key), &args)
            .await?;
        let mut entries = Vec::with_capacity(reply.claimed.len());
        for member in reply.claimed {
            match StepRef::parse(member.clone()) {
                Some(entry) => entries.push(entry),
                None => {
                    tracing::error!(key, member, "unreadable entry in a schedule; removing it");
                    self.end_claim(&key, &member).await?;
                }
            }
        }
        Ok(Claimed { key, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let args = Args {
            now: 0,
            hold_ms: 1,
            limit: 1,
        };
        let reply = Reply {
            claimed: vec!["m".into()],
        };
        contract::check(&CLAIM_DUE, &args, &reply);
    }
}
