"""Discord messages and interactions as ``ChatEvent``: which messages are for the bot, what they
say, and who is asking.

Pure: reads a ``discord.Message`` or ``discord.Interaction`` and does no I/O. The bot does not
need the privileged message content intent: Discord still sends the content of DMs, of messages
that mention the bot and of replies to it, which are exactly the messages answered here.
"""

from __future__ import annotations

import re

import discord

from bot.events import ChatEvent, MessageRef

__all__ = ["interaction_event", "is_for_bot", "manages_server", "to_event"]


def _replies_to(message: discord.Message, bot_id: int) -> bool:
    reference = message.reference
    if reference is None:
        return False
    resolved = reference.resolved
    return isinstance(resolved, discord.Message) and resolved.author.id == bot_id


def _in_bot_thread(message: discord.Message, bot_id: int) -> bool:
    channel = message.channel
    return isinstance(channel, discord.Thread) and channel.owner_id == bot_id


def is_for_bot(message: discord.Message, bot_id: int, *, follow_threads: bool = False) -> bool:
    """A DM, a mention of the bot, or a reply to one of its messages; with ``follow_threads``,
    also any message in a thread the bot started. Never a bot's message (the bot's own
    included)."""
    if message.author.bot or message.author.id == bot_id:
        return False
    if message.guild is None:
        return True
    mentioned = any(user.id == bot_id for user in message.mentions)
    return (
        mentioned
        or _replies_to(message, bot_id)
        or (follow_threads and _in_bot_thread(message, bot_id))
    )


def _without_bot_mention(content: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", " ", content).strip()


def to_event(
    message: discord.Message, bot_id: int, *, follow_threads: bool = False
) -> ChatEvent | None:
    """The common event for a message addressed to the bot, or None for any other message.

    The text loses the bot's own mention; an attachment-only message has empty text (the core
    answers it with a hint). The owner is the Discord user, the same in every server and DM.
    In a server the conversation is the person's own within the channel or thread, so the recent
    turns in a prompt are never someone else's exchange with the bot (whose answers may draw on
    that person's memories). ``source`` is the message itself, in its own channel (a thread's
    id in a thread).
    """
    if not is_for_bot(message, bot_id, follow_threads=follow_threads):
        return None
    channel = message.channel
    thread_id = str(channel.id) if isinstance(channel, discord.Thread) else None
    parent_id = (
        str(channel.parent_id) if isinstance(channel, discord.Thread) else str(channel.id)
    )
    is_direct = message.guild is None
    return ChatEvent(
        event_id=f"discord:{message.id}",
        platform="discord",
        author_id=str(message.author.id),
        author_name=message.author.display_name,
        text=_without_bot_mention(message.content, bot_id),
        conversation_id=(
            f"discord:{channel.id}" if is_direct else f"discord:{channel.id}:{message.author.id}"
        ),
        workspace_id=str(message.guild.id) if message.guild else None,
        channel_id=parent_id,
        thread_id=thread_id,
        is_direct=is_direct,
        mentions_bot=any(user.id == bot_id for user in message.mentions),
        source=MessageRef(platform="discord", channel=str(channel.id), message=str(message.id)),
        link=message.jump_url,
        at=message.created_at,
    )


def manages_server(interaction: discord.Interaction) -> bool:
    """Whether the person may change the server's settings: Discord's Manage Server permission
    (administrators have it too). Never in a DM."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def interaction_event(interaction: discord.Interaction, *, text: str,
                      is_admin: bool = False) -> ChatEvent:
    """The common event for a slash command or a button press, from the person who used it.
    ``text`` is what they asked for, as typed (``/memory list 2``), for the record. In a thread,
    as for messages, ``channel_id`` is the thread's parent and ``thread_id`` the thread."""
    channel_id = interaction.channel_id or 0
    thread = interaction.channel if isinstance(interaction.channel, discord.Thread) else None
    return ChatEvent(
        event_id=f"discord:interaction:{interaction.id}",
        platform="discord",
        author_id=str(interaction.user.id),
        author_name=interaction.user.display_name,
        text=text,
        conversation_id=f"discord:{channel_id}:{interaction.user.id}",
        workspace_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(thread.parent_id) if thread is not None else str(channel_id),
        thread_id=str(thread.id) if thread is not None else None,
        is_direct=interaction.guild_id is None,
        author_is_admin=is_admin,
        at=interaction.created_at,
    )
