"""An answer shown on Slack as the model writes it.

In a thread (a mention's thread in a channel, a thread in a DM, an assistant thread) the answer
streams with Slack's streaming methods: ``chat.startStream`` once its first words exist, then
``chat.appendStream`` with what is new, at most once every ``APPEND_INTERVAL`` seconds, and
``chat.stopStream`` with the rest. Those take Markdown, which Slack renders itself; the text is
made safe with :func:`safe_markdown` and only whole words are sent (the part after the last
blank waits), so a mention can never form across two appends.

Where there is no thread (a DM's own conversation) or the workspace refuses the streaming
methods (``unknown_method``, ``not_allowed``…), the answer is posted and then updated: each
message's whole text is converted to mrkdwn and escaped again at every update (so no update can
mention anyone either), and one message is updated at most once every ``UPDATE_INTERVAL``
seconds: ``chat.update`` is in Slack's Tier 3 (about 50 calls a minute per workspace), so one
answer takes at most 20 of them a minute and a few answers at once stay inside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.messages import render, safe_markdown
from bot.events import Reply

__all__ = ["APPEND_INTERVAL", "UPDATE_INTERVAL", "Place", "SlackStream", "StreamSupport"]

log = logging.getLogger(__name__)

APPEND_INTERVAL = 1.0
UPDATE_INTERVAL = 3.0
STREAM_LIMIT = 11_000  # Slack takes 12,000 characters of Markdown per call; room for a note
# What chat.startStream answers in a workspace (or plan) without the streaming methods.
UNSUPPORTED = frozenset({"unknown_method", "not_allowed", "method_not_supported_for_channel_type",
                         "feature_not_enabled", "not_enabled", "method_deprecated"})


@dataclass
class StreamSupport:
    """Whether this app's workspace takes the streaming methods: on until Slack refuses them
    once, then off for the life of the process (one app, one workspace token)."""

    available: bool = True


def _settled(text: str) -> str:
    """``text`` up to its last blank: a word, link or mention still being written waits."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[:cut] if cut > 0 else ""


@dataclass(frozen=True, slots=True)
class Place:
    """Where an answer goes: the channel, the thread (None: the DM's own conversation), and
    the person it answers (Slack needs them to stream outside a DM)."""

    channel: str
    thread_ts: str | None
    user: str
    team: str


class SlackStream:
    """The ``ReplyStream`` of one Slack answer, and then its whole reply (``finish``)."""

    def __init__(self, client: AsyncWebClient, place: Place, support: StreamSupport, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._place = place
        self._support = support
        self._clock = clock
        self._streaming = support.available and place.thread_ts is not None
        self._stream_ts: str | None = None
        self._streamed = ""  # the Markdown sent to the stream so far
        self._appended = 0.0
        self._posted: list[str] = []  # post-then-update: each message's ts…
        self._shown: list[str] = []  # …its text…
        self._updated: list[float] = []  # …and when it was last sent

    @property
    def started(self) -> bool:
        """Whether anything of the answer is in Slack yet."""
        return self._stream_ts is not None or bool(self._posted)

    async def show(self, text: str) -> None:
        """Show the answer so far: streamed (whole words, at most one append a second) or
        posted and updated (at most one update every ``UPDATE_INTERVAL``)."""
        if self._stream_ts is not None and self._clock() - self._appended < APPEND_INTERVAL:
            return
        settled = _settled(text)
        if not settled.strip():
            return
        if self._streaming:
            await self._append(safe_markdown(settled))
        if not self._streaming:
            # Converting to mrkdwn waits for an update to be due: no work per token.
            if self._posted and self._clock() - max(self._updated) < UPDATE_INTERVAL:
                return
            await self._sync(render(Reply(text=settled)), final=False)

    async def finish(self, reply: Reply) -> bool:
        """Show ``reply`` whole where the answer was shown. False when nothing was shown (an
        error sentence, a hint): the reply is then the caller's to post. Raises
        ``SlackApiError`` when Slack refuses."""
        if self._stream_ts is not None:
            await self._stop(reply)
            return True
        if self._posted:
            await self._sync(render(reply), final=True)
            return True
        return False

    async def _append(self, markdown: str) -> None:
        if self._stream_ts is None:
            await self._start(markdown)
            return
        now = self._clock()
        new = markdown[len(self._streamed):]
        if (not new or now - self._appended < APPEND_INTERVAL
                or len(markdown) > STREAM_LIMIT or not markdown.startswith(self._streamed)):
            return
        await self._client.chat_appendStream(channel=self._place.channel, ts=self._stream_ts,
                                             markdown_text=new)
        self._streamed, self._appended = markdown, self._clock()

    async def _start(self, markdown: str) -> None:
        place = self._place
        try:
            answer = await self._client.chat_startStream(
                channel=place.channel, thread_ts=place.thread_ts or "", markdown_text=markdown,
                recipient_user_id=place.user, recipient_team_id=place.team)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error not in UNSUPPORTED:
                raise
            log.warning("Slack refused chat.startStream (%s): answers are posted and updated "
                        "instead", error)
            self._support.available = self._streaming = False
            return
        self._stream_ts = str(answer["ts"])
        self._streamed, self._appended = markdown, self._clock()

    async def _stop(self, reply: Reply) -> None:
        """End the stream with the rest of the reply and its note. Should the stream no longer
        match the reply (or Slack refuse to end it), its message is replaced by the reply."""
        assert self._stream_ts is not None
        full = safe_markdown(reply.text)
        if reply.notice:
            full += f"\n\n_{safe_markdown(reply.notice)}_"
        place = self._place
        if full.startswith(self._streamed) and len(full) <= STREAM_LIMIT:
            try:
                await self._client.chat_stopStream(
                    channel=place.channel, ts=self._stream_ts,
                    markdown_text=full[len(self._streamed):] or None)
                return
            except SlackApiError as exc:
                log.warning("chat.stopStream failed (%s); replacing the streamed message",
                            exc.response.get("error"))
        else:
            await self._client.chat_stopStream(channel=place.channel, ts=self._stream_ts)
        pieces = render(reply)
        await self._client.chat_update(channel=place.channel, ts=self._stream_ts,
                                       text=pieces[0] if pieces else "…")
        for piece in pieces[1:]:
            await self._client.chat_postMessage(channel=place.channel, text=piece, mrkdwn=True,
                                                thread_ts=place.thread_ts)

    async def _sync(self, pieces: list[str], *, final: bool) -> None:
        """Post new pieces at once and update changed ones, each message at most once every
        ``UPDATE_INTERVAL`` until the last, which shows the whole reply."""
        place, now = self._place, self._clock()
        for n, piece in enumerate(pieces):
            if n < len(self._posted):
                if piece == self._shown[n] or (not final
                                               and now - self._updated[n] < UPDATE_INTERVAL):
                    continue
                await self._client.chat_update(channel=place.channel, ts=self._posted[n],
                                               text=piece)
                self._shown[n], self._updated[n] = piece, self._clock()
                continue
            posted = await self._client.chat_postMessage(
                channel=place.channel, text=piece, mrkdwn=True, thread_ts=place.thread_ts)
            self._posted.append(str(posted["ts"]))
            self._shown.append(piece)
            self._updated.append(self._clock())
        if final:
            while len(self._posted) > len(pieces):
                await self._client.chat_delete(channel=place.channel, ts=self._posted.pop())
                self._shown.pop()
                self._updated.pop()

