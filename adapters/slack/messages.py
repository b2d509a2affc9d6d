"""Replies as Slack messages: mrkdwn text, and Block Kit sections and buttons when a reply has
actions. Pure: no I/O.

Limits kept here are Slack's: block text and message text 3,000 characters (longer is cut),
50 blocks per message, 25 elements per actions block, button labels 75 characters, button values
2,000 characters, and action ids unique within a message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from markdown_to_mrkdwn import SlackMarkdownConverter

from bot.chunks import split_message
from bot.events import Action, Reply

__all__ = ["ACTION_PREFIX", "MESSAGE_LIMIT", "Message", "parse_value", "render", "render_messages",
           "safe_markdown"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 3000
BLOCKS_PER_MESSAGE = 50
BUTTONS_PER_BLOCK = 25
LABEL_LIMIT = 75
VALUE_LIMIT = 2000
ACTION_PREFIX = "membot_action_"  # every membot button's action_id starts so; the app routes on it

_CONVERTER = SlackMarkdownConverter()
# A channel link (<#C123> or <#C123|name>) pings nobody, so it is the one markup the model's text
# may carry through (the settings name channels so).
_ESCAPED_CHANNEL = re.compile(r"&lt;#([CG][A-Z0-9]+)(\|[^&<>|]*)?&gt;")
# What may leave as Slack markup after conversion: web and mail links (from Markdown links and
# images) and channel links. Anything else in angle brackets (<!channel>, <@U…>,
# <!subteam^…>, <javascript:…>) would be a mention or an odd link, so it is escaped.
_SAFE_MARKUP = re.compile(
    r"<(?:(?:https?://|mailto:)[^\s<>|]+|#[CG][A-Z0-9]+)(?:\|[^<>]*)?>")
# A Markdown link or image whose target is not a web or mail address ("[look](!channel)").
_ODD_LINK = re.compile(r"\]\((?!https?://|mailto:)")


@dataclass(frozen=True, slots=True)
class Message:
    """One Slack message: ``text`` (mrkdwn; the notification and fallback when there are
    blocks) and its Block Kit ``blocks``, if any."""

    text: str
    blocks: tuple[dict[str, Any], ...] = ()


def _escape(text: str) -> str:
    """Slack's control characters, escaped as Slack asks: text can never become a mention
    (``<!everyone>``, ``<@U…>``) or a link it did not write in Markdown. Channel links stay
    links (the settings name channels so)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _ESCAPED_CHANNEL.sub(r"<#\1\2>", escaped)


def _only_safe_markup(mrkdwn: str) -> str:
    """``mrkdwn`` with every ``<`` and ``>`` escaped except those of web, mail and channel links.

    The Markdown converter writes link and image targets as raw markup (``[look](!channel)``
    becomes ``<!channel|look>``), so escaping before converting is not enough on its own.
    """
    kept: list[str] = []
    start = 0
    for link in _SAFE_MARKUP.finditer(mrkdwn):
        kept += [_angles(mrkdwn[start:link.start()]), link.group()]
        start = link.end()
    kept.append(_angles(mrkdwn[start:]))
    return "".join(kept)


def _angles(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def safe_markdown(text: str) -> str:
    """``text`` as Markdown for Slack's streaming methods (``chat.startStream`` and the rest
    take Markdown, not mrkdwn), unable to mention anyone: ``&``, ``<`` and ``>`` are escaped as
    Slack asks, so no ``<!channel>`` or ``<@U…>`` can form, and a Markdown link or image whose
    target is not a web or mail address keeps its brackets as text (``]\\(``), so
    ``[look](!channel)`` cannot become one either.

    Local, so that it can be applied to an answer as it grows: what it makes of a character
    depends only on the text up to the next blank. The conversion of a text cut just before
    a blank is therefore the start of the conversion of the whole, and can be sent as it is.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _ODD_LINK.sub(r"]\\(", escaped)


def render(reply: Reply) -> list[str]:
    """A reply's text as Slack mrkdwn, in pieces under ``MESSAGE_LIMIT``.

    Guarantee: the only Slack markup in the result is ``<http(s)://…>``, ``<mailto:…>`` and
    channel links ``<#C…>``; no text can mention a person, a group, the channel or everyone.
    """
    text = _CONVERTER.convert(_escape(reply.text))
    if reply.notice:
        text = f"_{_escape(reply.notice)}_\n{text}"
    return split_message(_only_safe_markup(text), MESSAGE_LIMIT)


def render_messages(reply: Reply, *, blocks: bool = False) -> list[Message]:
    """A reply as Slack messages.

    Without actions it is plain mrkdwn text, one message per piece (with ``blocks``, each piece
    is a section block instead, so that the message replaces one with buttons entirely). With
    actions: the text as section blocks, then the buttons in order, in actions blocks of at
    most 25; a reply too long for one message's 50 blocks continues in more, the buttons in the
    last. A button whose command would not fit in a button's value is left out and logged.
    """
    pieces = render(reply)
    buttons = [b for n, action in enumerate(reply.actions) if (b := _button(n, action))]
    if not buttons and not blocks:
        return [Message(text=piece) for piece in pieces]
    sections = [_section(piece) for piece in pieces if piece.strip()]
    rows = [_actions(n // BUTTONS_PER_BLOCK, buttons[n:n + BUTTONS_PER_BLOCK])
            for n in range(0, len(buttons), BUTTONS_PER_BLOCK)]
    every = [*sections, *rows]
    return [_message(every[n:n + BLOCKS_PER_MESSAGE])
            for n in range(0, len(every), BLOCKS_PER_MESSAGE)]


def parse_value(value: str) -> tuple[str, str]:
    """A button's value as the command name and its arguments (the inverse of ``_button``)."""
    name, _, arguments = value.strip().partition(" ")
    return name, arguments.strip()


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _actions(n: int, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "block_id": f"membot_actions_{n}", "elements": buttons}


def _button(n: int, action: Action) -> dict[str, Any] | None:
    value = f"{action.command} {action.arguments}".strip()
    if len(value) > VALUE_LIMIT:
        log.warning("a %r button's command is over Slack's %d characters; left out",
                    action.command, VALUE_LIMIT)
        return None
    label = action.label.strip() or value
    if len(label) > LABEL_LIMIT:
        label = label[:LABEL_LIMIT - 1] + "…"
    button: dict[str, Any] = {"type": "button", "action_id": f"{ACTION_PREFIX}{n}",
                              "text": {"type": "plain_text", "text": label, "emoji": True},
                              "value": value}
    if action.style != "default":
        button["style"] = action.style
    return button


def _message(blocks: list[dict[str, Any]]) -> Message:
    """Blocks as a message whose text is its first section's (or, buttons only, their labels)."""
    text = next((b["text"]["text"] for b in blocks if b["type"] == "section"), None)
    if text is None:
        text = " · ".join(e["text"]["text"] for b in blocks for e in b["elements"])
    return Message(text=text[:MESSAGE_LIMIT], blocks=tuple(blocks))
