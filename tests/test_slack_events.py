"""The pure Slack mapping, on Events API bodies, slash commands and button presses shaped as
Slack sends them."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.events import action_event, command_event, reply_thread, to_event
from bot.events import MessageRef

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


def test_a_message_points_at_itself_not_at_its_thread() -> None:
    in_thread, dm = to_event(body(MENTION_IN_THREAD), BOT), to_event(body(DM), BOT)
    assert in_thread is not None and dm is not None
    assert in_thread.source == MessageRef(platform="slack", channel="C0GENERAL",
                                          message="1700000050.000200")
    assert dm.source == MessageRef(platform="slack", channel="D0ALICE",
                                   message="1700000001.000100")


def test_a_message_links_to_itself_as_slack_permalinks_do() -> None:
    url = "https://acme.slack.com/"
    in_thread, dm = to_event(body(MENTION_IN_THREAD), BOT, url), to_event(body(DM), BOT, url)
    top = to_event(body(MENTION), BOT, url)
    assert dm is not None
    assert dm.link == "https://acme.slack.com/archives/D0ALICE/p1700000001000100"
    assert top is not None
    assert top.link == "https://acme.slack.com/archives/C0GENERAL/p1700000000000100"
    assert in_thread is not None and in_thread.link == (
        "https://acme.slack.com/archives/C0GENERAL/p1700000050000200"
        "?thread_ts=1700000000.000100&cid=C0GENERAL")
    # Without the workspace's address there is no link, rather than a wrong one.
    bare = to_event(body(DM), BOT)
    assert bare is not None and bare.link is None


COMMAND: dict[str, Any] = {
    "token": "x", "team_id": "T0TEAM", "team_domain": "team", "channel_id": "C0GENERAL",
    "channel_name": "general", "user_id": "U0ALICE", "user_name": "alice",
    "command": "/membot", "text": "memory list 2", "api_app_id": "A0APP",
    "response_url": "https://hooks.slack.com/commands/T0TEAM/1/abc",
    "trigger_id": "13345224609.738474920.8088930838d88f008e0"}
PRESS: dict[str, Any] = {
    "type": "block_actions", "api_app_id": "A0APP", "token": "x",
    "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0TEAM"},
    "container": {"type": "message", "message_ts": "1700000009.000100",
                  "channel_id": "D0BOB", "is_ephemeral": True},
    "trigger_id": "13345224610.738474921.aaaa", "team": {"id": "T0TEAM", "domain": "team"},
    "channel": {"id": "D0BOB", "name": "directmessage"},
    "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
    "actions": [{"action_id": "membot_action_0", "block_id": "membot_actions_0",
                 "text": {"type": "plain_text", "text": "Next"}, "value": "memory list 3",
                 "type": "button", "action_ts": "1700000010.123456"}],
}


def test_a_slash_command_is_its_author_in_that_channel_and_no_message() -> None:
    event = command_event(COMMAND)
    assert (event.author_id, event.author_name, event.channel_id) == ("U0ALICE", "alice",
                                                                      "C0GENERAL")
    assert event.event_id == f"slack:command:{COMMAND['trigger_id']}"
    assert event.text == "/membot memory list 2" and not event.is_direct
    assert event.source is None and event.author_is_admin is False


def test_a_button_press_is_the_presser_where_they_pressed_it() -> None:
    event = action_event(PRESS, PRESS["actions"][0])
    assert (event.author_id, event.author_name, event.account.key) == (
        "U0BOB", "bob", "slack:T0TEAM:U0BOB")
    assert (event.channel_id, event.is_direct) == ("D0BOB", True)
    assert event.conversation_id == "slack:T0TEAM:D0BOB:U0BOB"
    assert event.event_id == f"slack:action:{PRESS['trigger_id']}"
    assert event.text == "/membot memory list 3" and event.source is None
    no_channel = {**PRESS, "channel": None, "team": None}
    moved = action_event(no_channel, PRESS["actions"][0])
    assert (moved.channel_id, moved.workspace_id) == ("D0BOB", "T0TEAM")
