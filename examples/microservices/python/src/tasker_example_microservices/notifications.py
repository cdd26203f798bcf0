"""The notifications service: sends the welcome messages, composed from all
three results before it (the diamond's join): a welcome email always, a
trial email when billing started a trial, and a push notification when the
user's preferences accept them."""

from __future__ import annotations

from typing import Any

from tasker_worker import StepContext

from tasker_example_microservices.account import LANGUAGE, Account, rfc3339_now
from tasker_example_microservices.latency import Latency

CALLABLE = "Microservices::StepHandlers::SendWelcomeSequenceHandler"


class SendWelcomeSequence:
    """``send_welcome_sequence``: reads the account, the billing profile and
    the preferences; answers with what it sent."""

    def __init__(self, latency: Latency | None = None) -> None:
        self.latency = latency or Latency.none()

    async def call(self, context: StepContext) -> Any:
        account = Account.of(context)
        billing = context.get_dependency_result("setup_billing_profile")
        preferences = context.get_dependency_result("initialize_preferences")
        name = account.name if account.name is not None else account.email
        messages: list[dict[str, Any]] = [
            {
                "channel": "email",
                "type": "welcome",
                "recipient": account.email,
                "subject": f"Welcome to Tasker, {name}!",
            }
        ]
        if _count(_at(billing, "trial_days")) > 0:
            messages.append(
                {
                    "channel": "email",
                    "type": "trial_started",
                    "recipient": account.email,
                    "subject": f"Your {_capitalize(account.plan)} trial has started",
                }
            )
        if _at(preferences, "preferences", "notifications", "push") is True:
            messages.append(
                {
                    "channel": "push",
                    "type": "welcome",
                    "body": f"Your {account.plan} account is ready. Let's get started!",
                }
            )
        channels: list[str] = []
        for message in messages:
            if not channels or channels[-1] != message["channel"]:
                channels.append(message["channel"])
        await self.latency.wait()
        return {
            "user_id": account.user_id,
            "channels_used": channels,
            "messages_sent": len(messages),
            "messages": messages,
            "status": "sent",
            "sent_at": rfc3339_now(),
            "language": LANGUAGE,
        }


def _at(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or ``None`` where the path runs out or
    goes through something that is not an object (as JSON indexing does)."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _count(value: Any) -> int:
    """A non-negative JSON integer, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _capitalize(text: str) -> str:
    """The first letter in upper case, the rest as it is."""
    return text[:1].upper() + text[1:]
