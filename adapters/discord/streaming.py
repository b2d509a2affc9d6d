"""An answer shown on Discord as the model writes it: posted once its first words exist, then
edited as it grows, continuing in further messages past Discord's 2,000 characters.

Pacing: one message is edited at most once every ``EDIT_INTERVAL`` seconds. Discord's documented
rule is not to hard-code limits but to follow its rate-limit headers (which discord.py does,
waiting out a bucket before it is exceeded); the limit commonly observed on message sends and
edits is 5 per 5 seconds per channel, so 1.5 s between edits of one message (at most 3.3 in 5 s)
leaves room in the channel's bucket for the next message of a long answer and for other answers
in the same channel. llmcord, the reference for this, edits once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import discord

from adapters.discord.replies import MESSAGE_LIMIT, NO_PINGS, render
from bot.chunks import split_message
from bot.events import Reply

__all__ = ["EDIT_INTERVAL", "DiscordStream"]

EDIT_INTERVAL = 1.5


def _settled(text: str) -> str:
    """``text`` up to its last blank: a word (or markup) still being written is left for the
    next edit, so no half-word flickers in and out."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[:cut] if cut > 0 else text


class DiscordStream:
    """The ``ReplyStream`` of one Discord message's answer, and then its whole reply.

    The first piece is a reply to the person's message, later pieces are messages in the same
    channel, as for an answer sent whole; every send and edit carries ``NO_PINGS``, so no text
    of the answer pings anyone at any point. Pieces are cut as ``render`` cuts the final reply
    (2,000 characters, code blocks closed and reopened), so the finished messages are exactly
    those of an answer sent whole.
    """

    def __init__(self, message: discord.Message, *, interval: float = EDIT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._message = message
        self._interval = interval
        self._clock = clock
        self._sent: list[discord.Message] = []
        self._shown: list[str] = []
        self._edited: list[float] = []  # when each sent message was last sent or edited

    async def show(self, text: str) -> None:
        """Show the answer so far: the first words at once, then at most once an interval
        (what comes in between is shown by a later call, or at the end). Cutting the text
        into messages waits for that too, so a long answer costs no work per token."""
        if self._sent and self._clock() - max(self._edited) < self._interval:
            return
        await self._sync(split_message(_settled(text), MESSAGE_LIMIT), final=False)

    async def finish(self, reply: Reply) -> None:
        """Show ``reply`` whole, whatever was shown of it so far, with no pause. Raises
        ``discord.HTTPException`` when Discord refuses."""
        await self._sync(render(reply), final=True)

    async def _sync(self, pieces: list[str], *, final: bool) -> None:
        now = self._clock()
        for n, piece in enumerate(pieces):
            if n < len(self._sent):
                if piece == self._shown[n] or (not final
                                               and now - self._edited[n] < self._interval):
                    continue
                await self._sent[n].edit(content=piece, allowed_mentions=NO_PINGS)
                self._shown[n], self._edited[n] = piece, self._clock()
                continue
            if n == 0:
                sent = await self._message.reply(piece, mention_author=False,
                                                 allowed_mentions=NO_PINGS)
            else:
                sent = await self._message.channel.send(piece, allowed_mentions=NO_PINGS)
            self._sent.append(sent)
            self._shown.append(piece)
            self._edited.append(self._clock())
        if final:
            while len(self._sent) > len(pieces):  # the whole reply took fewer messages
                await self._sent.pop().delete()
                self._shown.pop()
                self._edited.pop()
