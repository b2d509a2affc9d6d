"""How people type membot's commands on each platform."""

from __future__ import annotations

__all__ = ["typed"]


def typed(platform: str, command: str, subcommand: str = "", option: str = "",
          value: str = "") -> str:
    """How a person types a command on ``platform``: ``/memory forget id: 1a2b`` on Discord
    (whose options are named fields), ``/membot memory forget 1a2b`` on Slack, ``:memory forget
    1a2b`` in the terminal."""
    words = " ".join(w for w in (command, subcommand) if w)
    if platform == "discord":
        return f"/{words}" + (f" {option}: {value}" if value else "")
    tail = f" {value}" if value else ""
    if platform == "slack":
        return f"/membot {words}{tail}"
    if platform == "console":
        return f":{words}{tail}"
    return f"/{words}{tail}"
