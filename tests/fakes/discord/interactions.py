"""Interactions as Discord tracks them: the tokens it issued, how each was answered, and the
messages the answers made (the original response, followups, and their edits).

Plain state behind a lock, no I/O: `server.FakeDiscord` calls it from its routes and tests read
it from any thread. The rules are Discord's:

- the first response (callback) must come within the deadline and only once (10062, 40060);
- DEFERRED_UPDATE_MESSAGE (6) and UPDATE_MESSAGE (7) answer only component interactions, and
  make "the original response" the message the component is on; a message response (4, 5)
  to a component interaction makes a new message instead;
- after DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE (5) the first followup replaces the loading message:
  it takes that message's id and the deferral's ephemeral flag;
- a message's buttons must have unique custom ids of at most 100 characters (50035);
- only the person an ephemeral message was shown to can see, and so press, its buttons.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.fakes.discord import payloads as p
from tests.fakes.discord.payloads import FakeUser, Json, Upload, snowflake

__all__ = ["Answer", "Interactions"]

_APPLICATION_COMMAND, _MESSAGE_COMPONENT = 2, 3
_WITH_SOURCE, _DEFERRED_WITH_SOURCE, _DEFERRED_UPDATE, _UPDATE = 4, 5, 6, 7


@dataclass(frozen=True)
class Answer:
    """What a route answers: a status, a JSON body (None: no content) and the message made or
    edited, if any."""

    status: int
    body: Json | None = None
    message_id: int | None = None


def _error(status: int, message: str, code: int) -> Answer:
    return Answer(status, {"message": message, "code": code})


def _invalid(problem: str) -> Answer:
    return Answer(400, {"message": "Invalid Form Body", "code": 50035, "errors": problem})


@dataclass
class _Issued:
    payload: Json
    at: float
    original_id: int  # the message "@original" names once the interaction is answered
    response: int | None = None  # the callback type it was answered with
    deferred_flags: int = 0
    followups: int = 0


@dataclass
class _Message:
    data: Json
    origin: _Issued  # whose token made it: its channel, guild and user
    history: list[Json] = field(default_factory=list)  # earlier versions, oldest first

    @property
    def shown_to(self) -> int | None:
        """The only user who sees an ephemeral message; None for a message everyone sees."""
        if not int(self.data.get("flags") or 0) & p.EPHEMERAL:
            return None
        who = self.origin.payload.get("member", {}).get("user") or self.origin.payload["user"]
        return int(who["id"])


class Interactions:
    """The interactions issued to the bot and the messages answering them."""

    def __init__(self, bot: FakeUser, application_id: int, deadline: float) -> None:
        self._bot = bot
        self._application_id = application_id
        self.deadline = deadline  # seconds to the first response
        self._lock = threading.Lock()
        self._issued: dict[str, _Issued] = {}  # by token
        self._messages: dict[int, _Message] = {}

    # --- reading (any thread) ----------------------------------------------------------------

    def message(self, message_id: int) -> Json:
        """The message as Discord shows it now (content, components, attachments, flags)."""
        with self._lock:
            return copy.deepcopy(self._stored(message_id).data)

    def versions(self, message_id: int) -> list[Json]:
        """Every version of the message, oldest first, the current one last."""
        with self._lock:
            stored = self._stored(message_id)
            return copy.deepcopy([*stored.history, stored.data])

    def press(self, message_id: int, custom_id: str, user: FakeUser,
              permissions: int) -> Json:
        """An INTERACTION_CREATE for `user` pressing the button `custom_id` on a message the
        bot sent through an interaction, in that message's channel. Raises LookupError if the
        message has no such button, PermissionError if `user` cannot see the message."""
        with self._lock:
            stored = self._stored(message_id)
            if custom_id not in p.custom_ids(stored.data):
                raise LookupError(f"message {message_id} has no button {custom_id!r}; it has "
                                  f"{p.custom_ids(stored.data)}")
            if stored.shown_to not in (None, user.id):
                raise PermissionError(f"message {message_id} is ephemeral: only user "
                                      f"{stored.shown_to} sees it")
            origin, message = stored.origin.payload, copy.deepcopy(stored.data)
        guild = int(origin["guild_id"]) if origin.get("guild_id") else None
        return p.component_interaction(
            custom_id, message=message, application_id=self._application_id, user=user,
            channel_payload=origin["channel"], guild_id=guild, permissions=permissions)

    def _stored(self, message_id: int) -> _Message:
        stored = self._messages.get(message_id)
        if stored is None:
            raise LookupError(f"the bot made no message {message_id} through an interaction")
        return stored

    # --- the routes (the server's thread) ----------------------------------------------------

    def issue(self, payload: Json) -> None:
        """An INTERACTION_CREATE is being dispatched: its token becomes valid."""
        issued = _Issued(payload, time.monotonic(), snowflake())
        with self._lock:
            self._issued[str(payload["token"])] = issued
            if int(payload["type"]) == _MESSAGE_COMPONENT:
                pressed = int(payload["message"]["id"])
                if pressed not in self._messages:
                    self._messages[pressed] = _Message(copy.deepcopy(payload["message"]), issued)

    def callback(self, interaction_id: str, token: str, body: Json,
                 uploads: Sequence[Upload]) -> Answer:
        """`POST /interactions/{id}/{token}/callback` (answered with the interaction callback
        response object, as with `?with_response=true`)."""
        kind, data = int(body.get("type", 0)), body.get("data") or {}
        with self._lock:
            issued = self._issued.get(token)
            if issued is None or issued.payload["id"] != interaction_id or (
                    time.monotonic() - issued.at > self.deadline):
                return _error(404, "Unknown interaction", 10062)
            if issued.response is not None:
                return _error(400, "Interaction has already been acknowledged.", 40060)
            component = int(issued.payload["type"]) == _MESSAGE_COMPONENT
            if kind in (_DEFERRED_UPDATE, _UPDATE) and not component:
                return _invalid(f"response type {kind} answers only message components")
            if problem := p.components_problem(data.get("components")):
                return _invalid(problem)
            issued.response = kind
            if kind in (_DEFERRED_UPDATE, _UPDATE):
                issued.original_id = int(issued.payload["message"]["id"])
            message: Json | None = None
            if kind == _WITH_SOURCE:
                message = self._create(issued, data, uploads, issued.original_id)
            elif kind == _DEFERRED_WITH_SOURCE:
                issued.deferred_flags = int(data.get("flags") or 0) & p.EPHEMERAL
                self._create(issued, {"flags": issued.deferred_flags | p.LOADING}, (),
                             issued.original_id)
            elif kind == _UPDATE:
                message = self._edit(issued.original_id, data, uploads)
            resource: Json = {"type": kind}
            if message is not None:
                resource["message"] = copy.deepcopy(message)
            shown = self._messages.get(issued.original_id)
            flags = int(shown.data.get("flags") or 0) if shown is not None else 0
            return Answer(200, {"resource": resource, "interaction": {
                "id": issued.payload["id"], "type": issued.payload["type"],
                "response_message_id": str(issued.original_id),
                "response_message_loading": kind == _DEFERRED_WITH_SOURCE,
                "response_message_ephemeral": bool(flags & p.EPHEMERAL)}},
                issued.original_id if shown is not None else None)

    def followup(self, token: str, body: Json, uploads: Sequence[Upload]) -> Answer:
        """`POST /webhooks/{application}/{token}`: a new message (or, first after a deferral,
        the loading message's replacement)."""
        with self._lock:
            issued = self._acknowledged(token)
            if issued is None:
                return _error(404, "Unknown Webhook", 10015)
            if problem := p.components_problem(body.get("components")):
                return _invalid(problem)
            issued.followups += 1
            if issued.response == _DEFERRED_WITH_SOURCE and issued.followups == 1:
                stored = self._messages[issued.original_id]
                stored.history.append(stored.data)
                message = self._create(issued, {**body, "flags": issued.deferred_flags},
                                       uploads, issued.original_id)
            else:
                message = self._create(issued, body, uploads, snowflake())
            return Answer(200, copy.deepcopy(message), int(message["id"]))

    def edit_original(self, token: str, body: Json, uploads: Sequence[Upload]) -> Answer:
        """`PATCH /webhooks/{application}/{token}/messages/@original`."""
        with self._lock:
            issued = self._acknowledged(token)
            if issued is None or issued.original_id not in self._messages:
                return _error(404, "Unknown Message", 10008)
            if problem := p.components_problem(body.get("components")):
                return _invalid(problem)
            message = self._edit(issued.original_id, body, uploads)
            return Answer(200, copy.deepcopy(message), issued.original_id)

    def owns(self, message_id: int) -> bool:
        with self._lock:
            return message_id in self._messages

    def _acknowledged(self, token: str) -> _Issued | None:
        issued = self._issued.get(token)
        return issued if issued is not None and issued.response is not None else None

    def _create(self, issued: _Issued, body: Json, uploads: Sequence[Upload],
                message_id: int) -> Json:
        message = p.sent_message(self._bot, int(issued.payload["channel_id"]), body,
                                 message_id=message_id, webhook_id=self._application_id,
                                 uploads=uploads)
        history = self._messages[message_id].history if message_id in self._messages else []
        self._messages[message_id] = _Message(message, issued, history)
        return message

    def _edit(self, message_id: int, body: Json, uploads: Sequence[Upload]) -> Json:
        stored = self._messages[message_id]
        stored.history.append(copy.deepcopy(stored.data))
        message = stored.data
        for key in ("content", "components", "embeds"):
            if key in body:
                message[key] = body[key] if body[key] is not None else (
                    "" if key == "content" else [])
        channel = int(message["channel_id"])
        added = [p.attachment(u, channel) for u in uploads]
        if "attachments" in body:  # the ones listed by id stay; the rest go
            kept = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
        message["attachments"] = [*message["attachments"], *added]
        message["edited_timestamp"] = p.now()
        return message
