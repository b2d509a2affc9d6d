"""Slack payloads as ``ChatEvent``: which events are for the bot and what they say, and who ran
a slash command or pressed a button.

Pure: reads an Events API body (the ``event_callback`` envelope), a slash command's fields or a
``block_actions`` payload, and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.events import ChatEvent, MessageRef

__all__ = ["action_event", "command_event", "permalink", "reply_thread", "to_event"]

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


def permalink(workspace_url: str | None, channel: str, ts: str,
              thread_ts: str | None = None) -> str | None:
    """The link that opens a message in Slack, made the way ``chat.getPermalink`` makes it
    (``<workspace>/archives/<channel>/p<ts without its dot>``, with the thread for a reply), with
    no API call; None without the workspace's URL (``auth.test``'s ``url``)."""
    if not workspace_url or not workspace_url.startswith("https://"):
        return None
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


def to_event(body: Mapping[str, Any], bot_user_id: str,
             workspace_url: str | None = None) -> ChatEvent | None:
    """The common event for an event addressed to the bot, or None for any other.
    ``workspace_url`` (``auth.test``'s ``url``) makes the message's permalink.

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
        source=MessageRef(platform="slack", channel=channel, message=str(event["ts"])),
        link=permalink(workspace_url, channel, str(event["ts"]),
                       str(event["thread_ts"]) if event.get("thread_ts") else None),
        at=datetime.fromtimestamp(float(event["ts"]), UTC),
    )


def command_event(command: Mapping[str, Any]) -> ChatEvent:
    """The common event for ``/membot ...`` (trigger ids are unique per invocation)."""
    team, user, channel = command["team_id"], command["user_id"], command["channel_id"]
    return ChatEvent(
        event_id=f"slack:command:{command.get('trigger_id') or datetime.now(UTC).isoformat()}",
        platform="slack",
        author_id=user,
        author_name=command.get("user_name") or user,
        text=f"{command.get('command', '/membot')} {command.get('text', '')}".strip(),
        conversation_id=f"slack:{team}:{channel}:{user}",
        identity_scope=team,
        workspace_id=team,
        channel_id=channel,
        is_direct=str(channel).startswith("D"),
    )


def action_event(body: Mapping[str, Any], action: Mapping[str, Any],
                 slash_command: str = "/membot") -> ChatEvent:
    """The common event for a button press in a ``block_actions`` payload: the person who
    pressed it (never the one the message was for), where, and the command it stands for, as
    if typed after ``slash_command``. The trigger id is unique per press."""
    user = body.get("user") or {}
    team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
    channel = str((body.get("channel") or {}).get("id")
                  or (body.get("container") or {}).get("channel_id") or "")
    author = str(user["id"])
    pressed = body.get("trigger_id") or action.get("action_ts") or datetime.now(UTC).isoformat()
    return ChatEvent(
        event_id=f"slack:action:{pressed}",
        platform="slack",
        author_id=author,
        author_name=str(user.get("username") or user.get("name") or author),
        text=f"{slash_command} {action.get('value') or ''}".strip(),
        conversation_id=f"slack:{team}:{channel}:{author}",
        identity_scope=team,
        workspace_id=team,
        channel_id=channel,
        is_direct=channel.startswith("D"),
    )
