"""Rendering replies as Slack messages, checked against Slack's Block Kit limits as the fake Slack
enforces them (the same checks that make it answer invalid_blocks)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack.messages import Message, parse_value, render, render_messages
from bot.events import Action, Reply
from tests.fakes.slack.blocks import block_errors


def all_buttons(messages: list[Message]) -> list[dict[str, Any]]:
    return [e for m in messages for b in m.blocks if b["type"] == "actions"
            for e in b["elements"]]


def test_a_reply_without_buttons_stays_plain_text() -> None:
    reply = Reply(text="**Hello** <!channel>", notice="Your message was cut.")
    assert render_messages(reply) == [Message(text=piece) for piece in render(reply)]
    [message] = render_messages(reply)
    assert message.text == "_Your message was cut._\n*Hello* &lt;!channel&gt;"


def test_channel_links_stay_links_and_nothing_else_can_mention() -> None:
    [text] = render(Reply(text="Memory only in <#C0GENERAL> and <#C0RANDOM|random>. "
                               "<!channel> <@U0BOB> <#C0X|<!here>> a&b"))
    assert text == ("Memory only in <#C0GENERAL> and <#C0RANDOM|random>. &lt;!channel&gt; "
                    "&lt;@U0BOB&gt; &lt;#C0X|&lt;!here&gt;&gt; a&amp;b")


def test_replacing_a_message_with_buttons_by_plain_text_still_uses_blocks() -> None:
    [message] = render_messages(Reply(text="Done."), blocks=True)
    assert message.blocks == ({"type": "section", "text": {"type": "mrkdwn", "text": "Done."}},)
    assert message.text == "Done."


def test_buttons_keep_their_order_style_and_command() -> None:
    reply = Reply(text="Page 1", actions=(
        Action(label="Next", command="memory", arguments="list 2", style="primary"),
        Action(label="Forget all", command="memory", arguments="forget-all", style="danger"),
        Action(label="Help", command="help")))
    [message] = render_messages(reply)
    assert block_errors(list(message.blocks)) == []
    assert [b["type"] for b in message.blocks] == ["section", "actions"]
    assert [(b["text"]["text"], b["value"], b.get("style"), b["action_id"])
            for b in all_buttons([message])] == [
        ("Next", "memory list 2", "primary", "membot_action_0"),
        ("Forget all", "memory forget-all", "danger", "membot_action_1"),
        ("Help", "help", None, "membot_action_2")]
    assert [parse_value(b["value"]) for b in all_buttons([message])] == [
        ("memory", "list 2"), ("memory", "forget-all"), ("help", "")]


def test_a_long_reply_with_many_buttons_is_split_within_slacks_limits() -> None:
    text = "\n\n".join(f"{n}. " + "word " * 120 for n in range(400))  # ~240,000 characters
    actions = tuple(Action(label=f"Forget {n}", command="memory", arguments=f"forget m{n}")
                    for n in range(30))
    messages = render_messages(Reply(text=text, actions=actions))
    assert len(messages) >= 2
    for message in messages:
        assert block_errors(list(message.blocks)) == []
        assert 0 < len(message.text) <= 3000
    assert all(b["type"] == "section" for m in messages[:-1] for b in m.blocks)
    rows = [b for b in messages[-1].blocks if b["type"] == "actions"]
    assert [len(r["elements"]) for r in rows] == [25, 5]
    assert [b["value"] for b in all_buttons(messages)] == [f"memory forget m{n}"
                                                          for n in range(30)]
    said = "".join(b["text"]["text"] for m in messages for b in m.blocks
                   if b["type"] == "section")
    assert said.count("word") == 400 * 120


def test_labels_are_cut_to_75_and_a_command_too_long_for_a_button_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reply = Reply(text="Results", actions=(
        Action(label="x" * 100, command="memory", arguments="search tea"),
        Action(label="More", command="memory", arguments="search " + "y" * 2000),
        Action(label="  ", command="help")))
    with caplog.at_level(logging.WARNING):
        [message] = render_messages(reply)
    labels = [b["text"]["text"] for b in all_buttons([message])]
    assert labels == ["x" * 74 + "…", "help"]
    assert block_errors(list(message.blocks)) == []
    assert "'memory' button" in caplog.text


words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=4000),
       actions=st.lists(st.builds(Action, label=words, command=st.from_regex(r"[a-z][a-z-]{0,11}",
                                                                              fullmatch=True),
                                  arguments=words,
                                  style=st.sampled_from(["default", "primary", "danger"])),
                        max_size=60))
def test_any_reply_renders_as_blocks_slack_accepts(text: str, actions: list[Action]) -> None:
    messages = render_messages(Reply(text=text, actions=tuple(actions)))
    for message in messages:
        assert block_errors(list(message.blocks)) == []
    pressed = [parse_value(b["value"]) for b in all_buttons(messages)]
    assert pressed == [(a.command, a.arguments.strip()) for a in actions]


# How Slack reads markup in message text: `<` up to the next `>` is one token; what it starts with
# decides what it is (a special mention, a user or group mention, a channel, or a link).
_SLACK_TOKEN = re.compile(r"<([^>]*)>")
_SAFE_TARGET = re.compile(r"(?:https?://|mailto:)[^\s<>|]+|#[CG][A-Z0-9]+")


def slack_markup(text: str) -> list[str]:
    """The targets of every ``<...>`` token Slack would act on in ``text``."""
    return [m.group(1).split("|", 1)[0] for m in _SLACK_TOKEN.finditer(text)]


@pytest.mark.parametrize("model_text", [
    "[look](!channel)", "![x](!here)", "[boss](@U0BOSS)", "[grp](!subteam^S0ADMINS)",
    "[x](javascript:alert(1))", "[all](!everyone)", "![img](@U0BOSS)",
    "[a](<!channel>)", "[a](https://ok.example) [b](!here)", "| a |\n|---|\n| [x](!channel) |",
])
def test_markdown_links_cannot_become_mentions_or_odd_links(model_text: str) -> None:
    [text] = render(Reply(text=model_text))
    assert [t for t in slack_markup(text) if not _SAFE_TARGET.fullmatch(t)] == []
    assert "<!" not in text and "<@" not in text


def test_web_and_mail_links_in_markdown_still_become_links() -> None:
    [text] = render(Reply(text="See [the docs](https://example.com/a?b=1&c=2) or "
                               "[mail us](mailto:help@example.com) in <#C0GENERAL>."))
    assert text == ("See <https://example.com/a?b=1&amp;c=2|the docs> or "
                    "<mailto:help@example.com|mail us> in <#C0GENERAL>.")


pieces = st.sampled_from([*"[]()<>!@#|^&*_~`- \nabcCGHSU0:/.",
                          "http://", "https://", "mailto:", "javascript:", "!channel", "!here",
                          "!everyone", "@U0BOSS", "!subteam^S0A", "#C0GEN", "](", "![",
                          "| a |\n|---|\n"])
scraps = st.lists(pieces, max_size=8).map("".join)
markdown_links = st.builds("{}[{}]({})".format, st.sampled_from(["", "!"]), scraps, scraps)
markdownish = st.lists(st.one_of(pieces, markdown_links), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(markdownish, st.text(max_size=200)))
def test_no_model_text_renders_as_a_mention_or_a_non_web_link(text: str) -> None:
    for piece in render(Reply(text=text, notice=text[:20] or None)):
        assert [t for t in slack_markup(piece) if not _SAFE_TARGET.fullmatch(t)] == []
