"""Slash command groups, buttons, files and the admin flag on Discord: the real discord.py client
against the fake Discord, with a small command registry of its own (no database, no model)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from adapters.discord import MembotDiscordClient
from bot.commands.registry import Command, Commands
from bot.events import Action, Attachment, ChatEvent, Reply
from bot.ports import ReplyStream
from tests.fakes.discord import (
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeDiscord,
    FakeUser,
    Json,
    Recorded,
    custom_ids,
    snowflake,
)
from tests.fakes.discord import payloads as p
from tests.fakes.discord.harness import running, without_waits

EXPORT = b'{"memories": ["likes tea"]}\n\x00\xffbinary tail'
LONG = "A sentence about tea that goes on. " * 80  # 2,800 characters: two messages


@dataclass
class Calls:
    """What the synthetic commands were run with, in order."""

    runs: list[tuple[str, ChatEvent, str]] = field(default_factory=list)

    def of(self, name: str) -> list[tuple[ChatEvent, str]]:
        return [(event, arguments) for n, event, arguments in self.runs if n == name]


def registry(calls: Calls) -> Commands:
    """A memory group with paging buttons and an export file, an admin settings group, a plain
    command with an optional argument, and one that fails."""

    def recorded(name: str, usage: str = "", answer: Reply | None = None) -> Command:
        """Command ``name`` (its last word), recording its runs and echoing its arguments."""

        async def handler(event: ChatEvent, arguments: str) -> Reply:
            calls.runs.append((name, event, arguments))
            return answer or Reply(text=f"{name}: {arguments!r} for {event.author_id}")

        return Command(name=name.split()[-1], summary=f"the {name} command", handler=handler,
                       usage=usage)

    async def listing(event: ChatEvent, arguments: str) -> Reply:
        calls.runs.append(("memory list", event, arguments))
        page = int(arguments or "1")
        text = LONG if page >= 99 else f"Page {page} of your memories, {event.author_name}."
        return Reply(text=text, actions=(
            Action(label="Next", command="memory", arguments=f"list {page + 1}",
                   style="primary"),
            Action(label="Export", command="memory", arguments="export"),
            Action(label="Forget all", command="memory", arguments="forget-all",
                   style="danger"),
        ))

    async def settings_show(event: ChatEvent, arguments: str) -> Reply:
        calls.runs.append(("settings show", event, arguments))
        return Reply(text=f"admin={event.author_is_admin}",
                     actions=(Action(label="Refresh", command="settings", arguments="show"),))

    async def broken(event: ChatEvent, arguments: str) -> Reply:
        raise RuntimeError("a bug in a handler")

    export = Reply(text="Everything I keep about you.",
                   files=(Attachment(filename="memories.json", content=EXPORT,
                                     media_type="application/json"),))
    return Commands([
        recorded("help"),
        recorded("link", "[code]"),
        Command(name="memory", summary="see or forget what I remember", subcommands=(
            Command(name="list", usage="[page]", summary="your memories", handler=listing),
            recorded("memory search", "<words>"),
            recorded("memory forget-all"),
            recorded("memory export", answer=export),
            recorded("memory receipts", "<on|off>"),
        )),
        Command(name="settings", summary="this server's settings", admin=True, subcommands=(
            Command(name="show", summary="the settings", handler=settings_show),
            recorded("settings channels", "<all|here|add …|remove …>"),
        )),
        Command(name="broken", summary="always fails", handler=broken),
    ])


@dataclass
class Rig:
    fake: FakeDiscord
    calls: Calls

    async def slash(self, name: str, options: list[Json] | None = None, *, dm: bool = False,
                    permissions: int = MEMBER_PERMISSIONS) -> Recorded:
        """Alice's slash command; its first followup (the answer's first message)."""
        interaction = self.fake.interaction_create(name, options=options or [], dm=dm,
                                                   permissions=permissions)
        self.fake.dispatch("INTERACTION_CREATE", interaction)
        return await self.answer(interaction, "followup")

    async def press(self, message_id: int, custom_id: str,
                    permissions: int = MEMBER_PERMISSIONS) -> Json:
        """Alice presses a button; the interaction's payload, once its message was edited."""
        interaction = self.fake.component_interaction(message_id, custom_id,
                                                      permissions=permissions)
        self.fake.dispatch("INTERACTION_CREATE", interaction)
        await self.answer(interaction, "edit_original")
        return interaction

    async def answer(self, interaction: Json, kind: str, count: int = 1) -> Recorded:
        token = interaction["token"]
        return await self.fake.wait_for_async(
            lambda r: r.kind == kind and token in r.path and r.status == 200, count=count)

    def responses(self, interaction: Json) -> list[Recorded]:
        return [r for r in self.fake.interaction_responses() if interaction["token"] in r.path]


@pytest.fixture
async def rig(discord_fake: FakeDiscord) -> AsyncIterator[Rig]:
    calls = Calls()

    async def unanswered(event: ChatEvent, stream: ReplyStream | None = None) -> Reply | None:
        return None

    client = without_waits(MembotDiscordClient(handle=unanswered, commands=registry(calls)))
    async with running(client, discord_fake.token):
        await discord_fake.wait_for_async("commands")
        yield Rig(discord_fake, calls)


def subcommand(name: str, **values: str) -> list[Json]:
    """A subcommand with string options, nested as Discord sends it."""
    return [{"name": name, "type": 1,
             "options": [{"name": k, "type": 3, "value": v} for k, v in values.items()]}]


def buttons(message: Json) -> list[tuple[str, str, int]]:
    """(label, custom_id, style) of a message's buttons."""
    return [(c["label"], c["custom_id"], c["style"]) for row in message["components"]
            for c in row["components"]]


async def test_groups_sync_with_one_subcommand_each_and_one_string_option(rig: Rig) -> None:
    synced = {c["name"]: c for c in rig.fake.commands()}
    assert list(synced) == ["help", "link", "memory", "settings", "broken"]
    assert synced["help"]["options"] == []
    [code] = synced["link"]["options"]
    assert (code["name"], code["type"], code.get("required", False)) == ("code", 3, False)

    memory = {o["name"]: o for o in synced["memory"]["options"]}
    assert list(memory) == ["list", "search", "forget-all", "export", "receipts"]
    assert {o["type"] for o in memory.values()} == {1}  # SUB_COMMAND
    options = {name: [(o["name"], o["type"], o.get("required", False)) for o in sub["options"]]
               for name, sub in memory.items()}
    assert options == {"list": [("page", 3, False)], "search": [("words", 3, True)],
                       "forget-all": [], "export": [], "receipts": [("value", 3, True)]}
    [on_off] = memory["receipts"]["options"]
    assert [c["value"] for c in on_off["choices"]] == ["on", "off"]

    settings = {o["name"]: o for o in synced["settings"]["options"]}
    [channels] = settings["channels"]["options"]
    assert (channels["name"], channels["required"], channels.get("choices", [])) == (
        "value", True, [])  # "add …" takes more words: free text, no choices


async def test_a_subcommand_runs_with_its_option_as_the_arguments(rig: Rig) -> None:
    answer = await rig.slash("memory", subcommand("search", words="tea and biscuits"))
    assert answer.body["content"] == f"memory search: 'tea and biscuits' for {rig.fake.user.id}"
    await rig.slash("memory", subcommand("list"))
    await rig.slash("link", [{"name": "code", "type": 3, "value": "ABCD-EFGH"}], dm=True)
    [(search, words)] = rig.calls.of("memory search")
    assert words == "tea and biscuits"
    assert search.author_id == str(rig.fake.user.id) and search.text == (
        "/memory search tea and biscuits")
    assert [arguments for _, arguments in rig.calls.of("memory list")] == [""]
    [(link, code)] = rig.calls.of("link")
    assert code == "ABCD-EFGH" and link.is_direct


async def test_buttons_come_on_the_private_answer_in_order(rig: Rig) -> None:
    answer = await rig.slash("memory", subcommand("list", page="2"))
    callback = rig.fake.calls("interaction_callback")[0]
    assert callback.body == {"type": 5, "data": {"flags": 64}}  # private "thinking" at once
    message = rig.fake.message(answer.message_id or 0)
    assert message["flags"] & 64  # ephemeral: only the person who asked sees it
    assert message["content"] == f"Page 2 of your memories, {rig.fake.user.username}."
    assert buttons(message) == [("Next", "membot:memory list 3", 1),  # primary
                                ("Export", "membot:memory export", 2),  # secondary
                                ("Forget all", "membot:memory forget-all", 4)]  # danger


async def test_pressing_a_button_runs_it_for_the_presser_and_replaces_the_message(
    rig: Rig,
) -> None:
    answer = await rig.slash("memory", subcommand("list"))
    message_id = answer.message_id or 0
    press = await rig.press(message_id, "membot:memory list 2")

    first, pressed = rig.calls.of("memory list")
    assert pressed[1] == "2"
    assert pressed[0].event_id == f"discord:interaction:{press['id']}" != first[0].event_id
    assert pressed[0].author_id == str(rig.fake.user.id)
    callback, edit = rig.responses(press)
    assert callback.body["type"] == 6  # DEFERRED_UPDATE_MESSAGE: no new message
    assert edit.message_id == message_id
    message = rig.fake.message(message_id)
    assert message["content"].startswith("Page 2 of")
    assert custom_ids(message)[0] == "membot:memory list 3"
    assert len(rig.fake.calls("followup")) == 1  # replaced in place, nothing added

    # Pressing again on the new buttons goes on from there.
    await rig.press(message_id, "membot:memory list 3")
    assert rig.fake.message(message_id)["content"].startswith("Page 3 of")
    assert [v["content"][:6] for v in rig.fake.message_versions(message_id)] == [
        "", "Page 1", "Page 2", "Page 3"]


async def test_someone_else_cannot_press_a_private_answer(rig: Rig) -> None:
    answer = await rig.slash("memory", subcommand("list"))
    bob = FakeUser(snowflake(), "bob")
    with pytest.raises(PermissionError):
        rig.fake.component_interaction(answer.message_id or 0, "membot:memory list 2", user=bob)


async def test_a_file_arrives_as_a_private_attachment_with_its_exact_bytes(rig: Rig) -> None:
    answer = await rig.slash("memory", subcommand("export"))
    [upload] = answer.uploads
    assert (upload.filename, upload.content) == ("memories.json", EXPORT)
    assert answer.body["content"] == "Everything I keep about you."
    message = rig.fake.message(answer.message_id or 0)
    assert message["flags"] & 64
    assert [(a["filename"], a["size"]) for a in message["attachments"]] == [
        ("memories.json", len(EXPORT))]


async def test_a_pressed_button_that_answers_with_a_file_replaces_buttons_with_it(
    rig: Rig,
) -> None:
    answer = await rig.slash("memory", subcommand("list"))
    press = await rig.press(answer.message_id or 0, "membot:memory export")
    [edit] = [r for r in rig.responses(press) if r.kind == "edit_original"]
    assert [(u.filename, u.content) for u in edit.uploads] == [("memories.json", EXPORT)]
    message = rig.fake.message(answer.message_id or 0)
    assert message["content"] == "Everything I keep about you."
    assert message["components"] == []  # the old buttons are gone
    assert [a["filename"] for a in message["attachments"]] == ["memories.json"]
    assert message["flags"] & 64


async def test_a_long_answer_is_split_with_the_buttons_on_its_last_message(rig: Rig) -> None:
    interaction = rig.fake.interaction_create("memory", options=subcommand("list", page="99"))
    rig.fake.dispatch("INTERACTION_CREATE", interaction)
    second = await rig.answer(interaction, "followup", count=2)
    first = rig.responses(interaction)[1]
    assert first.body["content"] + " " + second.body["content"] == LONG.strip()
    assert all(len(r.body["content"]) <= 2000 for r in (first, second))
    assert "components" not in first.body or first.body["components"] == []
    assert len(second.body["components"][0]["components"]) == 3
    assert second.body["flags"] == 64

    # Pressed, the first message is replaced and the rest follows, buttons last again.
    message_id = second.message_id or 0
    press = rig.fake.component_interaction(message_id, "membot:memory list 100")
    rig.fake.dispatch("INTERACTION_CREATE", press)
    more = await rig.answer(press, "followup")
    edit = next(r for r in rig.responses(press) if r.kind == "edit_original")
    assert rig.fake.message(message_id)["components"] == [] and edit.message_id == message_id
    assert custom_ids(rig.fake.message(more.message_id or 0))[0] == "membot:memory list 101"


async def test_a_button_under_a_message_others_see_answers_privately(rig: Rig) -> None:
    """The presser's answer must not replace a message the whole channel sees."""
    guild = rig.fake.guilds[0]
    channel = guild.text_channel()
    shared = p.sent_message(rig.fake.bot_user, channel.id, {
        "content": "Try this:", "components": [{"type": 1, "components": [
            {"type": 2, "style": 2, "label": "List", "custom_id": "membot:memory list"}]}]})
    press = p.component_interaction(
        "membot:memory list", message=shared, application_id=rig.fake.application_id,
        user=rig.fake.user, channel_payload=p.channel(guild, channel), guild_id=guild.id)
    rig.fake.dispatch("INTERACTION_CREATE", press)
    followup = await rig.answer(press, "followup")
    callback = rig.responses(press)[0]
    assert callback.body == {"type": 5, "data": {"flags": 64}}  # a new private message
    assert rig.fake.message(followup.message_id or 0)["flags"] & 64
    assert [r.kind for r in rig.responses(press)] == ["interaction_callback", "followup"]
    assert rig.fake.message(int(shared["id"]))["content"] == "Try this:"


async def test_other_custom_ids_are_left_alone(rig: Rig) -> None:
    guild = rig.fake.guilds[0]
    channel = guild.text_channel()
    theirs = p.sent_message(rig.fake.bot_user, channel.id, {"components": [
        {"type": 1, "components": [{"type": 2, "style": 2, "label": "Vote",
                                    "custom_id": "poll:vote 1"}]}]})
    foreign = p.component_interaction(
        "poll:vote 1", message=theirs, application_id=rig.fake.application_id,
        user=rig.fake.user, channel_payload=p.channel(guild, channel), guild_id=guild.id)
    rig.fake.dispatch("INTERACTION_CREATE", foreign)
    # A membot command dispatched after it is answered; the foreign press never was.
    await rig.slash("help")
    assert rig.responses(foreign) == []
    assert [name for name, _, _ in rig.calls.runs] == ["help"]


@pytest.mark.parametrize(("dm", "permissions", "admin"), [
    (False, MEMBER_PERMISSIONS, False),
    (False, MEMBER_PERMISSIONS | MANAGE_GUILD, True),
    (True, MEMBER_PERMISSIONS | MANAGE_GUILD, False),
], ids=["member", "manage-server", "dm"])
async def test_the_admin_flag_is_manage_server_in_a_server(
    rig: Rig, dm: bool, permissions: int, admin: bool,
) -> None:
    answer = await rig.slash("settings", subcommand("show"), dm=dm, permissions=permissions)
    assert answer.body["content"] == f"admin={admin}"
    [(event, _)] = rig.calls.of("settings show")
    assert event.author_is_admin is admin


async def test_a_command_that_needs_no_admin_never_gets_the_flag(rig: Rig) -> None:
    await rig.slash("memory", subcommand("list"), permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
    [(event, _)] = rig.calls.of("memory list")
    assert event.author_is_admin is False


async def test_a_pressed_admin_button_reads_the_pressers_permissions_then(rig: Rig) -> None:
    answer = await rig.slash("settings", subcommand("show"))
    message_id = answer.message_id or 0
    assert rig.fake.message(message_id)["content"] == "admin=False"
    # Made a server manager meanwhile, Alice presses Refresh.
    await rig.press(message_id, "membot:settings show", MEMBER_PERMISSIONS | MANAGE_GUILD)
    assert rig.fake.message(message_id)["content"] == "admin=True"
    assert [e.author_is_admin for e, _ in rig.calls.of("settings show")] == [False, True]


async def test_a_failing_command_gets_one_honest_private_sentence(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    answer = await rig.slash("broken")
    assert answer.body["content"].startswith("Sorry, that command failed")
    assert rig.fake.message(answer.message_id or 0)["flags"] & 64
    assert "command broken failed" in caplog.text


async def test_in_a_thread_a_command_names_the_parent_channel_and_the_thread(rig: Rig) -> None:
    guild = rig.fake.guilds[0]
    parent, thread_id = guild.channels[0].id, snowflake()
    interaction = rig.fake.interaction_create("memory", options=subcommand("list"))
    interaction["channel_id"] = str(thread_id)  # what Discord sends for a thread
    interaction["channel"] = p.thread(thread_id, guild.id, parent, rig.fake.user.id)
    rig.fake.dispatch("INTERACTION_CREATE", interaction)
    await rig.answer(interaction, "followup")
    [(event, _)] = rig.calls.of("memory list")
    assert (event.channel_id, event.thread_id) == (str(parent), str(thread_id))
    assert event.workspace_id == str(guild.id) and not event.is_direct
