"""The 🧠 receipt: each adapter says how to put a reaction on one of its messages, and the memory
writer asks for one when a message taught it something."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.events import MessageRef

__all__ = ["LEARNED", "ReceiptRouter"]

log = logging.getLogger(__name__)

LEARNED = "🧠"
React = Callable[[MessageRef, str], Awaitable[None]]
Notice = Callable[[Sequence[MessageRef], str], Awaitable[None]]


class ReceiptRouter:
    """The ``Receipts`` port, routing by platform to the adapters running in this process.

    Guarantees: ``learned`` never raises; a platform with no adapter here (the message came in
    through another process) or a failing reaction is logged and skipped, never retried.
    """

    def __init__(self) -> None:
        self._react: dict[str, React] = {}
        self._notice: dict[str, Notice] = {}

    def register(self, platform: str, react: React) -> None:
        """Route receipts for ``platform`` to ``react(source, emoji)`` (the adapter's own)."""
        self._react[platform] = react

    def register_notice(self, platform: str, notice: Notice) -> None:
        """Route receipts for ``platform`` to ``notice(batch, emoji)``, given every message of
        the batch learned from, oldest first (for an adapter that says so in words)."""
        self._notice[platform] = notice

    async def learned(self, source: MessageRef, batch: Sequence[MessageRef] = ()) -> None:
        react = self._react.get(source.platform)
        notice = self._notice.get(source.platform)
        if react is None and notice is None:
            log.debug("no %s adapter in this process for a receipt", source.platform)
            return
        try:
            if notice is not None:
                await notice(tuple(batch) or (source,), LEARNED)
            elif react is not None:
                await react(source, LEARNED)
        except Exception as exc:
            log.warning("the learned-receipt on a %s message failed: %s", source.platform,
                        exc.__class__.__name__)
