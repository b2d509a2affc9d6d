"""Files for one person on Slack. Slack cannot attach files to an ephemeral message, so they go
to the person's DM with the bot, and the private answer says where they are."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.events import Attachment

__all__ = ["send_files"]

log = logging.getLogger(__name__)


async def send_files(client: AsyncWebClient, user: str, files: Sequence[Attachment],
                     comment: str | None = None) -> str:
    """Upload ``files`` into ``user``'s DM with the bot, with ``comment`` above them. Returns
    the sentence to tell the person: where the files are, or that sending them failed (which is
    logged). Never raises for Slack's refusals or an unreachable Slack."""
    names = ", ".join(f"`{f.filename}`" for f in files)
    try:
        opened = await client.conversations_open(users=user)
        channel = str(opened["channel"]["id"])
        await client.files_upload_v2(
            channel=channel,
            initial_comment=comment,
            file_uploads=[{"filename": f.filename, "content": f.content, "title": f.filename}
                          for f in files],
        )
    except SlackApiError as exc:
        reason = str(exc.response.get("error") or "error")
        answer = f"I couldn't send you {names}: Slack refused the upload ({reason})."
    except (SlackRequestError, aiohttp.ClientError, TimeoutError) as exc:
        reason = exc.__class__.__name__
        answer = f"I couldn't send you {names}: the upload to Slack failed."
    else:
        return f"I sent {names} to our direct messages."
    log.warning("sending %d file(s) to a Slack DM failed: %s", len(files), reason)
    return answer
