"""The composition root shared by the CLI and the bot: nothing is built at import time."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bot.config import Settings
from storage.db import make_engine
from storage.migrate import ensure_current
from storage.wal import WalCheckpointer


@dataclass
class App:
    """Everything a command or the bot needs, built once from the settings."""

    settings: Settings
    engine: Engine
    checkpointer: WalCheckpointer | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()


def build_app(settings: Settings, *, check_schema: bool = True) -> App:
    """Build the app; refuse to run on a schema that is behind (names `autocircle db upgrade`)."""
    engine = make_engine(settings.database_url, background_checkpoints=True)
    if check_schema:
        try:
            ensure_current(engine)
        except Exception:
            engine.dispose()
            raise
    # SQLite: no commit (a reply's, a job's) pays for copying the log into the file
    checkpointer = WalCheckpointer(engine).start() if engine.dialect.name == "sqlite" else None
    return App(settings=settings, engine=engine, checkpointer=checkpointer)
