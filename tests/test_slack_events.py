"""The pure Slack mapping, on Events API bodies shaped as Slack sends them."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.events import reply_thread, to_event

BOT = "U0BOT"


def body(event: dict[str, Any], event_id: str = "Ev0001") -> dict[str, Any]:
    return {"token": "x", "team_id": "T0TEAM", "api_app_id": "A0APP", "type": "event_callback",
            "event_id": event_id, "event_time": 1700000000, "event": event,
            "authorizations": [{"team_id": "T0TEAM", "user_id": BOT, "is_bot": True}]}


MENTION = {"type": "app_mention", "user": "U0ALICE", "text": f"<@{BOT}> what do I like?",
           "ts": "1700000000.000100", "channel": "C0GENERAL", "event_ts": "1700000000.000100",
           "client_msg_id": "c1"}
MENTION_IN_THREAD = {**MENTION, "ts": "1700000050.000200", "thread_ts": "1700000000.000100"}
DM = {"type": "message", "channel_type": "im", "user": "U0ALICE", "text": "hello",
      "ts": "1700000001.000100", "channel": "D0ALICE", "event_ts": "1700000001.000100"}
BOT_POST = {"type": "message", "subtype": "bot_message", "bot_id": "B0OTHER", "text": "beep",
            "ts": "1700000002.000100", "channel": "D0ALICE", "channel_type": "im"}
EDIT = {"type": "message", "subtype": "message_changed", "channel": "D0ALICE",
        "channel_type": "im", "ts": "1700000003.000100",
        "message": {"type": "message", "user": "U0ALICE", "text": "edited"}}
CHANNEL_CHATTER = {"type": "message", "channel_type": "channel", "user": "U0ALICE",
                   "text": "lunch?", "ts": "1700000004.000100", "channel": "C0GENERAL"}


def test_a_channel_mention_is_answered_in_a_new_thread_under_it() -> None:
    event = to_event(body(MENTION), BOT)
    assert event is not None
    assert (event.event_id, event.platform, event.author_id) == ("slack:Ev0001", "slack",
                                                                 "U0ALICE")
    assert event.identity_scope == event.workspace_id == "T0TEAM"
    assert event.text == "what do I like?" and event.mentions_bot and not event.is_direct
    assert event.thread_id == MENTION["ts"]
    assert event.conversation_id == f"slack:T0TEAM:C0GENERAL:{MENTION['ts']}:U0ALICE"


def test_a_mention_inside_a_thread_is_answered_in_that_thread() -> None:
    event = to_event(body(MENTION_IN_THREAD), BOT)
    assert event is not None and event.thread_id == "1700000000.000100"
    assert reply_thread(MENTION_IN_THREAD) == "1700000000.000100"


def test_a_direct_message_is_answered_in_the_conversation() -> None:
    event = to_event(body(DM), BOT)
    assert event is not None and event.is_direct and event.thread_id is None
    assert event.conversation_id == "slack:T0TEAM:D0ALICE"


@pytest.mark.parametrize("ignored", [BOT_POST, EDIT, CHANNEL_CHATTER,
                                     {**DM, "user": BOT}, {**DM, "bot_id": "B0BOT"}])
def test_bots_edits_and_unaddressed_chatter_are_ignored(ignored: dict[str, Any]) -> None:
    assert to_event(body(ignored), BOT) is None


def test_the_same_person_is_the_same_owner_in_every_channel_of_a_team() -> None:
    a, b = to_event(body(MENTION), BOT), to_event(body(DM), BOT)
    assert a is not None and b is not None
    assert a.account.key == b.account.key == "slack:T0TEAM:U0ALICE"
