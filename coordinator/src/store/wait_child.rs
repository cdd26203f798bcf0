//! `wait_child.lua`: an attempt notes the child task it waits for, and its
//! lease ends.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use tasker_protocol::TaskTemplate;
use uuid::Uuid;

use super::Store;
use super::keys::StepRef;
use super::script::LuaScript;
use crate::Error;

static WAIT_CHILD: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("wait_child", 2, include_str!("wait_child.lua")));

/// The arguments, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args {
    step: usize,
    attempt: u32,
    child: Uuid,
    lease_member: String,
}

/// The reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    noted: bool,
}

impl Store {
    /// Notes that `attempt` of `step` waits for `child`, and ends the
    /// attempt's lease; `false` if that attempt is no longer running: the
    /// step moved on, or the child's result came first (the step then still
    /// names the child).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn wait_for_child(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        step: usize,
        attempt: u32,
        child: Uuid,
    ) -> Result<bool, Error> {
        let args = Args {
            step,
            attempt,
            child,
            lease_member: StepRef::new(task_id, template, step, attempt).member,
        };
        let keys = [
            self.keys.task(task_id),
            self.keys.leases_of(task_id, &template.namespace),
        ];
        let reply: Reply = WAIT_CHILD.call_one(self, &keys, &args).await?;
        Ok(reply.noted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let args = Args {
            step: 0,
            attempt: 1,
            child: Uuid::nil(),
            lease_member: "m".into(),
        };
        contract::check(&WAIT_CHILD, &args, &Reply { noted: true });
    }
}
