"""A person's memories as files they can keep: JSON for programs, Markdown for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.events import Attachment
from bot.ports import MemoryRecord, Turn
from bot.wording import one_line

__all__ = ["export_files"]


def _when(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at is not None else "undated"


def export_files(
    *,
    owner_id: str,
    memories: Sequence[MemoryRecord],
    turns: Sequence[tuple[str, Turn]],
    queued: Sequence[Turn] = (),
    now: datetime,
) -> tuple[Attachment, Attachment]:
    """``membot-memories-<date>.json`` and ``.md``: every memory, current or not, with its id,
    dates, metadata, what superseded it and the messages it was learned from; the recent
    messages kept as short-term context; and the messages still waiting to be learned. Both
    hold the same data."""
    stamp = now.strftime("%Y-%m-%d")
    document = {
        "exported_at": now.isoformat(),
        "owner": owner_id,
        "memories": [
            {
                "id": m.id,
                "text": m.text,
                "created_at": _when(m.created_at),
                "updated_at": _when(m.updated_at),
                "metadata": m.metadata,
                "current": m.superseded is None,
                "superseded": None if m.superseded is None else {
                    "at": _when(m.superseded.at), "by": m.superseded.by,
                    "event_id": m.superseded.event_id},
                "learned_from": [
                    {"event_id": s.event_id, "said_at": _when(s.said_at), "text": s.quote,
                     "platform": s.platform, "conversation": s.conversation,
                     "channel": s.channel, "message": s.message, "link": s.link}
                    for s in m.sources
                ],
            }
            for m in memories
        ],
        "recent_messages": [
            {"conversation": conversation, "role": t.role, "text": t.text, "at": _when(t.at)}
            for conversation, t in turns
        ],
        "waiting_to_be_learned": [{"text": t.text, "at": _when(t.at)} for t in queued],
    }
    lines = [
        "# What membot remembers about you",
        "",
        f"Exported {now.strftime('%Y-%m-%d %H:%M %Z').strip()}: {len(memories)} memories, "
        f"{len(turns)} recent messages.",
        "",
        "## Memories (newest first, those no longer current included)",
        "",
    ]
    for m in memories:
        lines.append(f"- {_day(m.created_at)} `{m.id}` {one_line(m.text)}"
                     + (f" _(from {m.metadata['platform']})_" if "platform" in m.metadata
                        else ""))
        if m.superseded is not None:
            lines.append(f"  - no longer current: replaced {_day(m.superseded.at)} by "
                         f"`{m.superseded.by}`" if m.superseded.by else
                         f"  - no longer current: taken back {_day(m.superseded.at)}")
        lines += [f"  - learned from: {_when(s.said_at)} “{one_line(s.quote)}”"
                  + (f" {s.link}" if s.link else "") for s in m.sources]
    if not memories:
        lines.append("Nothing yet.")
    lines += ["", "## Recent messages (short-term context of each conversation)", ""]
    lines += [
        f"- {_when(t.at)} {conversation} {t.role}: {one_line(t.text)}"
        for conversation, t in turns
    ] or ["None."]
    if queued:
        lines += ["", "## Waiting to be learned", ""]
        lines += [f"- {_when(t.at)} {one_line(t.text)}" for t in queued]
    return (
        Attachment(
            filename=f"membot-memories-{stamp}.json",
            content=json.dumps(document, ensure_ascii=False, indent=2).encode(),
            media_type="application/json",
        ),
        Attachment(
            filename=f"membot-memories-{stamp}.md",
            content=("\n".join(lines) + "\n").encode(),
            media_type="text/markdown",
        ),
    )

