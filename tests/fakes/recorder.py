"""Recording what a fake server received, and waiting for it, from any thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["Recorder"]


class _Kinded(Protocol):
    @property
    def kind(self) -> str: ...


R = TypeVar("R", bound=_Kinded)


class Recorder(Generic[R]):
    """Thread-safe records of kind ``R``; a test matches them by kind (a string) or predicate.

    Subclasses call :meth:`_record` from the server's thread and may override
    :meth:`_describe` to say more about a record in timeout messages.
    """

    def __init__(self) -> None:
        self._records: list[R] = []
        self._cond = threading.Condition()

    @property
    def requests(self) -> list[R]:
        """A snapshot of everything recorded so far, in arrival order."""
        with self._cond:
            return list(self._records)

    def calls(self, kind: str) -> list[R]:
        """The records of one kind, in arrival order."""
        with self._cond:
            return [r for r in self._records if r.kind == kind]

    def wait_for(self, what: str | Callable[[R], bool], timeout: float = 5.0,
                 count: int = 1) -> R:
        """Block until `count` records match a kind or predicate; return the `count`-th.

        This blocks the calling thread: on an event loop use `wait_for_async`.
        Raises TimeoutError naming everything that did arrive.
        """
        match = self._matcher(what)
        with self._cond:
            if self._cond.wait_for(lambda: len(self._matching(match)) >= count, timeout):
                return self._matching(match)[count - 1]
        raise TimeoutError(self._timeout_message(what, count))

    async def wait_for_async(self, what: str | Callable[[R], bool],
                             timeout: float = 5.0,  # noqa: ASYNC109
                             count: int = 1) -> R:
        """`wait_for` that polls instead of blocking the running event loop.

        It takes a timeout, like `wait_for`, so that a forgotten wrapper never hangs a test.
        """
        match = self._matcher(what)
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                found = self._matching(match)
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(what, count))
            await asyncio.sleep(0.005)

    def _describe(self, record: R) -> str:
        return record.kind

    @staticmethod
    def _matcher(what: str | Callable[[R], bool]) -> Callable[[R], bool]:
        return (lambda r: r.kind == what) if isinstance(what, str) else what

    def _matching(self, match: Callable[[R], bool]) -> list[R]:
        return [r for r in self._records if match(r)]

    def _timeout_message(self, what: object, count: int) -> str:
        seen = [self._describe(r) for r in self.requests]
        return f"waited for {count} x {what!r}; recorded: {seen}"

    def _record(self, record: R) -> None:
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()
