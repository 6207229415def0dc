"""The web console and the Telegram Mini App (issue 15): an aiohttp application served beside
the webhook (``bot/cli/run_cmd.py``) or alone by ``autocircle web``."""

from bot.web.app import build_web_app

__all__ = ["build_web_app"]
