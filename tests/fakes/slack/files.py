"""Slack's file uploads, as the fake keeps them: the three steps slack-sdk's `files_upload_v2`
takes, each checked as Slack checks it.

1. `files.getUploadURLExternal` (filename, length > 0) hands out an upload URL and a file id.
2. The upload URL takes the bytes, raw or multipart, and answers 200 `OK - <length>`.
3. `files.completeUploadExternal` (files: `[{"id", "title"}]`, optional channel_id, channels,
   initial_comment, thread_ts) shares the uploaded files; a file never issued or never
   uploaded is `file_not_found`. Only then does a file exist for `uploaded()`.

Not thread-safe by itself: `FakeSlack` calls it with its lock held.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.slack.payloads import Json, UploadedFile, slack_id

__all__ = ["Uploads"]


class UploadRefused(Exception):
    """A files.* call's `{"ok": false, "error": ...}` answer."""


@dataclass
class _Pending:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


class Uploads:
    """Files on their way in (by upload token) and files shared (in completion order)."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}  # upload token -> file
        self._by_id: dict[str, _Pending] = {}
        self._shared: list[UploadedFile] = []

    def upload_url(self, args: Json, base_url: str) -> Json:
        """files.getUploadURLExternal's answer: `upload_url` (under `base_url`) and `file_id`."""
        filename = str(args.get("filename") or "")
        try:
            length = int(str(args.get("length") or "0"))
        except ValueError:
            raise UploadRefused("invalid_arguments") from None
        if not filename:
            raise UploadRefused("invalid_arguments")
        if length <= 0:
            raise UploadRefused("missing_argument")  # what Slack says to a length of 0
        token = secrets.token_urlsafe(24)
        pending = _Pending(slack_id("F"), filename, length)
        self._pending[token] = self._by_id[pending.file_id] = pending
        return {"upload_url": f"{base_url}{token}", "file_id": pending.file_id}

    def receive(self, token: str, content: bytes) -> str | None:
        """Store the bytes POSTed to an upload URL; the file id, or None for an unknown URL."""
        pending = self._pending.get(token)
        if pending is None:
            return None
        pending.content = content
        return pending.file_id

    def complete(self, args: Json, bot_user_id: str,
                 resolve: Callable[[str, bool], str | None]) -> Json:
        """files.completeUploadExternal: share the files in `channel_id` and `channels`.

        `resolve(id, user_ids_allowed)` names the channel an id stands for (a user id, allowed
        in `channels` only, stands for the bot's DM with them), or None if there is none."""
        listed = args.get("files")
        if isinstance(listed, str):
            try:
                listed = json.loads(listed)
            except ValueError:
                raise UploadRefused("invalid_arguments") from None
        if not isinstance(listed, list) or not listed:
            raise UploadRefused("invalid_arguments")
        named = [(c, True) for c in str(args.get("channels") or "").split(",") if c]
        if args.get("channel_id"):
            named.insert(0, (str(args["channel_id"]), False))
        resolved = [resolve(c, users_allowed) for c, users_allowed in named]
        channels = [c for c in resolved if c is not None]
        if len(channels) < len(resolved):
            raise UploadRefused("channel_not_found")
        targets: list[str | None] = [*channels] or [None]  # none: the file stays private
        files: list[_Pending] = []
        for item in listed:
            pending = self._by_id.get(str(item.get("id")) if isinstance(item, dict) else "")
            if pending is None or pending.content is None:
                raise UploadRefused("file_not_found")
            files.append(pending)
        answered: list[Json] = []
        for item, pending in zip(listed, files, strict=True):
            title = str(item.get("title") or pending.filename)
            content = pending.content or b""
            for channel in targets:
                self._shared.append(UploadedFile(
                    id=pending.file_id, filename=pending.filename, title=title,
                    content=content, channel=channel,
                    initial_comment=args.get("initial_comment") or None,
                    thread_ts=args.get("thread_ts") or None))
            answered.append({
                "id": pending.file_id, "created": int(time.time()), "name": pending.filename,
                "title": title, "user": bot_user_id, "size": len(content),
                "mimetype": mimetypes.guess_type(pending.filename)[0] or "text/plain",
                "channels": [c for c in channels if c.startswith("C")],
                "ims": [c for c in channels if c.startswith("D")],
            })
        return {"files": answered}

    def shared(self) -> list[UploadedFile]:
        return list(self._shared)

    def clear(self) -> None:
        self._pending.clear()
        self._by_id.clear()
        self._shared.clear()
