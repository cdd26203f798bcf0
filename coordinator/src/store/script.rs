//! The contract between the store's Rust and its Lua scripts.
//!
//! Every script takes items: each its keys and one JSON object of named
//! arguments, and gives back one JSON object per item (`common.lua`'s
//! `for_each_item`). Each script's header lists the names of its arguments
//! and of its reply; the Rust file named after the script holds the two as
//! types, and a test checks each type against the header, and the header
//! against the names the script reads. Nothing on either side depends on a
//! position.

use std::collections::HashMap;

use redis::Script;
use redis::cluster_routing::Slot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::Error;

/// One of the store's scripts.
pub struct LuaScript {
    name: &'static str,
    keys_per_item: usize,
    waits_for_replicas: bool,
    script: Script,
    #[cfg_attr(not(test), allow(dead_code))]
    body: &'static str,
}

impl LuaScript {
    /// The script `name`, whose items each have `keys_per_item` keys, with
    /// `common.lua` before its `body`.
    pub(crate) fn new(name: &'static str, keys_per_item: usize, body: &'static str) -> Self {
        let source = format!("{}\n{body}", include_str!("common.lua"));
        Self {
            name,
            keys_per_item,
            waits_for_replicas: true,
            script: Script::new(&source),
            body,
        }
    }

    /// The same script, whose writes need no replica before its caller
    /// acts on its reply: it only reads, or what it writes is safe to lose
    /// in a failover.
    pub(crate) fn without_replicas(mut self) -> Self {
        self.waits_for_replicas = false;
        self
    }

    /// Calls the script once for all of `items`, each its keys and its
    /// arguments, and gives back each item's reply, in order.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails: then none, some or all
    /// of the items may have been applied. An item's reply that cannot be
    /// read is [`Error::ScriptReply`].
    pub(crate) async fn call<'a, A, R>(
        &self,
        store: &Store,
        items: impl ExactSizeIterator<Item = (&'a [String], &'a A)>,
    ) -> Result<Vec<Result<R, Error>>, Error>
    where
        A: Serialize + Sync + 'a,
        R: DeserializeOwned,
    {
        let items: Vec<(&[String], &A)> = items.collect();
        let count = items.len();
        // A cluster runs a script on one slot: one call per slot, all at
        // once. An item's keys are all in its first key's slot, and the
        // items of one task stay in order, since they share its slot.
        let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, (keys, _)) in items.iter().enumerate() {
            debug_assert_eq!(keys.len(), self.keys_per_item, "keys of {}", self.name);
            let slot = if store.is_cluster() {
                Slot::for_key(&keys[0])
            } else {
                Slot::for_key("")
            };
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, members)) => members.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        let calls = groups
            .iter()
            .map(|(slot, members)| self.call_slot(store, *slot, members, &items));
        let mut replies: Vec<Option<String>> = vec![None; count];
        for ((_, members), group) in groups.iter().zip(futures::future::join_all(calls).await) {
            for (&i, reply) in members.iter().zip(group?) {
                replies[i] = Some(reply);
            }
        }
        Ok(replies
            .into_iter()
            .map(|reply| {
                let reply = reply.ok_or_else(|| self.unreadable("no reply for an item".into()))?;
                serde_json::from_str(&reply).map_err(|e| self.unreadable(format!("{e}, in {reply}")))
            })
            .collect())
    }

    /// One call for the items `members` of `items`, whose keys are in
    /// `slot`; then, for a script that writes, the wait for replicas.
    async fn call_slot<A: Serialize>(
        &self,
        store: &Store,
        slot: Slot,
        members: &[usize],
        items: &[(&[String], &A)],
    ) -> Result<Vec<String>, Error> {
        let mut invocation = self.script.prepare_invoke();
        for &i in members {
            let (keys, args) = items[i];
            for key in keys {
                invocation.key(key);
            }
            invocation.arg(serde_json::to_vec(args).expect("script arguments always serialize"));
        }
        let replies: Vec<String> = invocation
            .invoke_async(&mut store.conn())
            .await
            .map_err(|e| store.error(e))?;
        if replies.len() != members.len() {
            return Err(self.unreadable(format!("{} replies for {} items", replies.len(), members.len())));
        }
        if self.waits_for_replicas {
            store.wait_for_replicas(slot).await?;
        }
        Ok(replies)
    }

    /// Calls the script for one item.
    ///
    /// # Errors
    ///
    /// As [`Self::call`].
    pub(crate) async fn call_one<A, R>(&self, store: &Store, keys: &[String], args: &A) -> Result<R, Error>
    where
        A: Serialize + Sync,
        R: DeserializeOwned,
    {
        self.call(store, std::iter::once((keys, args)))
            .await?
            .pop()
            .expect("a call gives back one reply for each item")
    }

    fn unreadable(&self, detail: String) -> Error {
        Error::ScriptReply {
            script: self.name,
            detail,
        }
    }
}

/// The context and the completed results that step-ready messages carry,
/// as the JSON text the store holds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The task context.
    pub context: String,
    /// Completed results by step index.
    #[serde(default)]
    pub results: HashMap<usize, String>,
}

/// What the publish of a join needs from the store: the spans that
/// recorded its parents' results, to link to, and how long it waited
/// between its first parent's end and its last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpans {
    /// The join step.
    pub step: usize,
    /// The traceparents of the spans that recorded its parents' results.
    #[serde(default)]
    pub links: Vec<String>,
    /// From its first parent's end to its last, in ms, as workers reported
    /// them.
    pub wait_ms: Option<i64>,
}

/// What the contract tests of each script use.
#[cfg(test)]
pub(crate) mod contract {
    use std::collections::BTreeSet;

    use serde::Serialize;

    use super::LuaScript;

    /// The names `script`'s header lists under the heading that starts
    /// with `heading` (`ARGV` or `Reply`): the lines `--   <name>  ...`.
    fn header_names(script: &LuaScript, heading: &str) -> BTreeSet<String> {
        let mut lines = script
            .body
            .lines()
            .skip_while(|l| !l.starts_with(&format!("-- {heading}")));
        assert!(
            lines.next().is_some(),
            "{}.lua has no '-- {heading}' section in its header",
            script.name
        );
        lines
            .take_while(|l| l.starts_with("--") && l.trim_end() != "--")
            .filter_map(|l| l.strip_prefix("--   "))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The top-level names of `sample`, serialized.
    fn names_of(sample: &impl Serialize) -> BTreeSet<String> {
        match serde_json::to_value(sample).expect("a sample serializes") {
            serde_json::Value::Object(fields) => fields.keys().cloned().collect(),
            other => panic!("a sample must serialize to an object, not {other}"),
        }
    }

    /// Checks that `script`'s header lists exactly the fields of `args` and
    /// `reply` (samples with every optional field set), and that the script
    /// reads no argument its header does not list.
    pub(crate) fn check(script: &LuaScript, args: &impl Serialize, reply: &impl Serialize) {
        let documented = header_names(script, "ARGV");
        assert_eq!(
            documented,
            names_of(args),
            "{}.lua: the ARGV its header lists (left) and the Rust arguments (right) differ",
            script.name
        );
        let read: BTreeSet<String> = script
            .body
            .split("args.")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        let undocumented: Vec<&String> = read.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{}.lua reads arguments its header does not list: {undocumented:?}",
            script.name
        );
        assert_eq!(
            header_names(script, "Reply"),
            names_of(reply),
            "{}.lua: the reply its header lists (left) and the Rust reply (right) differ",
            script.name
        );
    }
}
