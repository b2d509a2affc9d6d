"""The ``membot`` command in a process of its own, talking to the local fakes.

``python -m tests.fakes.entrypoint <membot arguments>`` runs :func:`adapters.cli.main` as the
installed ``membot`` command does, after pointing discord.py at a fake Discord
(``FAKE_DISCORD_REST`` and ``FAKE_DISCORD_GATEWAY``: the fake's ``rest_base`` and
``gateway_url``) and slack-sdk's Web API client at a fake Slack (``FAKE_SLACK_API``: the fake's
``api_url``), for whichever of these is set. Everything else (settings from the environment,
the composition root, signals, exit codes) is the product's own, so tests can run several bot
processes at once, as shards or replicas of one bot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["main", "point_at_fakes"]


def point_at_fakes(environ: Mapping[str, str]) -> None:
    """Point the platform clients built later in this process at the fakes ``environ`` names."""
    if rest := environ.get("FAKE_DISCORD_REST"):
        import discord
        import yarl

        discord.http.Route.BASE = rest
        gateway = environ.get("FAKE_DISCORD_GATEWAY") or ""
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    if api := environ.get("FAKE_SLACK_API"):
        from slack_sdk.web.async_client import AsyncWebClient

        AsyncWebClient.BASE_URL = api


def main() -> None:
    import sys

    from adapters.cli import main as membot

    point_at_fakes(os.environ)
    membot(sys.argv[1:])


if __name__ == "__main__":
    main()
