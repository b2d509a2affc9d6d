"""Slack events as ``ChatEvent``: which events are for the bot, and what they say.

Pure: reads an Events API body (the ``event_callback`` envelope) and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.events import ChatEvent

__all__ = ["reply_thread", "to_event"]

# Edits, deletions, joins, bot posts and the like are never questions for the bot.
_ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}


def _is_for_bot(event: Mapping[str, Any], bot_user_id: str) -> bool:
    if event.get("bot_id") or event.get("user") in (None, bot_user_id):
        return False
    if event.get("subtype") not in _ANSWERED_SUBTYPES:
        return False
    if event.get("type") == "app_mention":
        return True
    # Direct messages arrive as plain `message` events (app_mention never fires in DMs).
    return event.get("type") == "message" and event.get("channel_type") == "im"


def reply_thread(event: Mapping[str, Any]) -> str | None:
    """The thread to answer in: the one the message is in, or a new one under a channel
    mention. DMs are answered in the conversation itself unless the message was in a thread."""
    if event.get("thread_ts"):
        return str(event["thread_ts"])
    if event.get("channel_type") == "im":
        return None
    return str(event["ts"])


def to_event(body: Mapping[str, Any], bot_user_id: str) -> ChatEvent | None:
    """The common event for an event addressed to the bot, or None for any other.

    The text loses the bot's own mention; events carry no display name, so ``author_name`` is
    empty. The owner is the Slack user within its team; in a
    channel the conversation is the person's own within the thread, so recent turns in a prompt
    are never someone else's exchange with the bot.
    """
    event = body.get("event")
    if not isinstance(event, Mapping) or not _is_for_bot(event, bot_user_id):
        return None
    team = str(body.get("team_id") or event.get("team") or "")
    channel = str(event["channel"])
    user = str(event["user"])
    is_direct = event.get("channel_type") == "im"
    thread = reply_thread(event)
    text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", str(event.get("text") or ""))
    place = f"slack:{team}:{channel}" + (f":{thread}" if thread else "")
    return ChatEvent(
        event_id=f"slack:{body.get('event_id') or event.get('client_msg_id') or event['ts']}",
        platform="slack",
        author_id=user,
        author_name="",  # events carry no name; the prompt then leaves it out
        text=text.strip(),
        conversation_id=place if is_direct else f"{place}:{user}",
        identity_scope=team,
        workspace_id=team,
        channel_id=channel,
        thread_id=thread,
        is_direct=is_direct,
        mentions_bot=event.get("type") == "app_mention",
        at=datetime.fromtimestamp(float(event["ts"]), UTC),
    )
