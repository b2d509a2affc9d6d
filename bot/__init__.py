"""membot's core: a memory-chat engine that knows nothing about any chat platform.

Adapters (``adapters/``) turn platform messages into :class:`bot.events.ChatEvent` and send
back the :class:`bot.events.Reply` that :class:`bot.core.Core` returns.
"""

__version__ = "0.1.0"
