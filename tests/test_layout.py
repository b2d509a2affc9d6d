"""The core stays free of platform code: ``bot/`` imports no platform library and no adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import bot

FORBIDDEN = ("discord", "slack_bolt", "slack_sdk", "adapters")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_bot_imports_no_platform_library_and_no_adapter() -> None:
    package = Path(bot.__file__).parent
    offenders = {
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert offenders == set()
    assert len(list(package.rglob("*.py"))) >= 10  # the scan really read the package


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    root = Path(bot.__file__).parent.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    commands = [line.strip() for line in readme.splitlines() if ".venv/bin/pytest" in line]
    assert commands, "the README gives no test command"
    assert commands[0] in ci.splitlines()


def test_the_readmes_discord_invite_asks_for_exactly_the_permissions_the_bot_uses() -> None:
    import discord

    needed = discord.Permissions(view_channel=True, send_messages=True,
                                 send_messages_in_threads=True, read_message_history=True,
                                 add_reactions=True)
    readme = (Path(bot.__file__).parent.parent / "README.md").read_text()
    assert f"permissions={needed.value}" in readme
    assert "scope=bot+applications.commands" in readme


def test_the_slack_manifest_subscribes_to_what_the_app_handles() -> None:
    import yaml

    root = Path(bot.__file__).parent.parent
    manifest = yaml.safe_load((root / "deploy" / "slack" / "manifest.yaml").read_text())
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert sorted(settings["event_subscriptions"]["bot_events"]) == [
        "app_mention", "assistant_thread_context_changed", "assistant_thread_started",
        "message.im"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/membot"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "assistant:write", "chat:write", "commands", "im:history",
            "reactions:write"} <= scopes


def test_the_readmes_and_docs_links_lead_somewhere() -> None:
    import re

    root = Path(bot.__file__).parent.parent

    def anchors(text: str) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}

    readme = (root / "README.md").read_text()
    own = anchors(readme)
    assert {"contents", "quick-start", "try-it-with-no-key", "configuration"} <= own
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name} links to {target}, which is not there"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text()), f"{page.name}: no #{anchor}"
