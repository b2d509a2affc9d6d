"""The bot's web server: account-linking pages, Slack's HTTP mode and health checks."""

from adapters.web.server import build_web_app, serve

__all__ = ["build_web_app", "serve"]
