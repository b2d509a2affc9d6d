"""Platform adapters: each turns its platform's messages into ``bot.events.ChatEvent`` and sends
back the core's ``Reply``. Only this package imports platform libraries."""
