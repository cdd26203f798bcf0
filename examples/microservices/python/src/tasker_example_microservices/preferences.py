"""The preferences service: creates the new user's preferences, one of the
diamond's two parallel branches. The notification channels follow the plan
(push for paid plans); the task's context may override them, and set the
language, under ``preferences``."""

from __future__ import annotations

from typing import Any

from tasker_worker import StepContext

from tasker_example_microservices.account import LANGUAGE, Account, rfc3339_now
from tasker_example_microservices.latency import Latency

CALLABLE = "Microservices::StepHandlers::InitializePreferencesHandler"


class InitializePreferences:
    """``initialize_preferences``: reads the account and the optional
    ``preferences`` input, answers with the preferences."""

    def __init__(self, latency: Latency | None = None) -> None:
        self.latency = latency or Latency.none()

    async def call(self, context: StepContext) -> Any:
        account = Account.of(context)
        notifications: dict[str, Any] = {
            "email": True,
            "push": account.plan != "free",
            "sms": False,
        }
        # Anything goes here, as in the Rust handler: overrides that are not
        # an object, or whose notifications are not, change nothing.
        overrides = context.get_input_or("preferences", None)
        if not isinstance(overrides, dict):
            overrides = {}
        extra = overrides.get("notifications")
        if isinstance(extra, dict):
            notifications.update(extra)
        await self.latency.wait()
        return {
            "user_id": account.user_id,
            "preferences": {
                "notifications": notifications,
                # The request's language, when it gives one, even as null.
                "language": overrides.get("language", "en"),
                "theme": "light",
            },
            "created_at": rfc3339_now(),
            "language": LANGUAGE,
        }
