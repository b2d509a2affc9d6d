"""What a person's and a server's memory settings allow one turn (pure: no database)."""

from __future__ import annotations

import pytest

from bot.choices import PAUSED_NOTICE, Person, Place, decide
from bot.events import ChatEvent
from bot.ports import Access


def event(*, direct: bool = False, channel: str = "C1", thread: str | None = None) -> ChatEvent:
    return ChatEvent(event_id="e", platform="discord", author_id="1", author_name="a",
                     text="hi", conversation_id="c", workspace_id=None if direct else "G1",
                     channel_id=channel, thread_id=thread, is_direct=direct)


ALL = Access(recall=True, learn=True, receipts=True)
NONE = Access(recall=False, learn=False, receipts=False)


@pytest.mark.parametrize(("place", "turn", "expected"), [
    (None, event(), ALL),
    (Place(), event(), ALL),
    (Place(memory=False), event(), NONE),
    (Place(memory=False), event(direct=True), NONE),  # a Slack workspace's DMs are in it
    (Place(channels=("C2",)), event(channel="C1"), NONE),
    (Place(channels=("C2",)), event(channel="C2"), ALL),
    (Place(channels=("C2",)), event(channel="C2", thread="T9"), ALL),  # a thread of C2
    (Place(channels=("T9",)), event(channel="C2", thread="T9"), ALL),  # that thread alone
    (Place(channels=("C2",)), event(direct=True, channel="D1"), ALL),  # DMs are not limited
    (Place(public_recall=False), event(), Access(recall=False, learn=True, receipts=True)),
    (Place(public_recall=False), event(direct=True), ALL),
    (Place(receipts=False), event(), Access(recall=True, learn=True, receipts=False)),
])
def test_a_places_settings(place: Place | None, turn: ChatEvent, expected: Access) -> None:
    assert decide(turn, Person(), place) == expected


def test_a_paused_person_gets_nothing_anywhere_and_the_notice_once() -> None:
    paused = Person(paused=True)
    assert decide(event(), paused, None, first_pause_notice=True) == Access(
        recall=False, learn=False, receipts=False, notice=PAUSED_NOTICE)
    assert decide(event(direct=True), paused, Place(), first_pause_notice=False) == NONE


def test_a_persons_receipts_off_wins_over_the_place() -> None:
    assert decide(event(), Person(receipts=False), Place()).receipts is False
    assert decide(event(), Person(receipts=False), None).receipts is False
