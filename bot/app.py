"""The composition root shared by the CLI and the bot: nothing is built at import time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bot.config import Settings
from storage.db import make_engine
from storage.migrate import ensure_current


@dataclass
class App:
    """Everything a command or the bot needs, built once from the settings."""

    settings: Settings
    engine: Engine

    def close(self) -> None:
        self.engine.dispose()


def build_app(settings: Settings, *, check_schema: bool = True) -> App:
    """Build the app; refuse to run on a schema that is behind (names `autocircle db upgrade`)."""
    engine = make_engine(settings.database_url)
    if check_schema:
        try:
            ensure_current(engine)
        except Exception:
            engine.dispose()
            raise
    return App(settings=settings, engine=engine)
