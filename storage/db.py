"""One engine and session factory for SQLite and PostgreSQL from the same URL setting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Result, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, SQLModel, create_engine

from storage.wal import defer_checkpoints


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: PostgreSQL pool: the bot lets at most ``PG_POOL_SIZE`` updates hold a session at once (the
#: rest wait asynchronously, see ``bot.middlewares``), so the overflow stays free for the
#: sender's and the scheduler's threads; a checkout that still finds the pool empty waits at most
#: ``PG_POOL_TIMEOUT_S`` and fails the unit of work with a logged error instead of hanging.
PG_POOL_SIZE = 10
PG_POOL_OVERFLOW = 20
PG_POOL_TIMEOUT_S = 10.0


def make_engine(url: str, *, echo: bool = False, background_checkpoints: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    ``background_checkpoints``: SQLite commits leave the log's checkpoint to a
    ``storage.wal.WalCheckpointer`` the caller runs (the application does)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        if background_checkpoints:
            event.listen(engine, "connect", defer_checkpoints)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_POOL_OVERFLOW,
        pool_timeout=PG_POOL_TIMEOUT_S,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # DBAPI objects: untyped
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


#: a bulk job's SQLite page cache (KiB; SQLite's own default is 2 MiB)
JOB_CACHE_KIB = 65_536


@contextmanager
def roomy_sqlite_cache(conn: Connection, kib: int = JOB_CACHE_KIB) -> Iterator[None]:
    """Give one bulk job's SQLite connection a larger page cache, then the old size back.

    With SQLite's 2 MiB an UPDATE of a few thousand owners scattered over a million rereads
    index pages it has just written from the OS for every row (twice the time of the UPDATE
    with 64 MiB); every connection of the pool keeping that much would cost memory for
    nothing, so only the job's own connection gets it, for the job. No-op elsewhere."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (handlers render after commit)."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine, info: dict[str, Any] | None = None) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error. ``info`` is handed to the
    session (e.g. the delivery policy pushes are planned under)."""
    with Session(engine, expire_on_commit=False, info=info) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def table_of(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a SQLModel table class (for Core inserts/updates and ``.c``)."""
    table = model.__table__  # type: ignore[attr-defined]  # reason: SQLModel's metaclass sets __table__ but does not declare it
    assert isinstance(table, Table)
    return table


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE run through ``Session.execute``/``Connection.execute``."""
    # reason for the cast: Session.execute is typed to return Result for every statement; for
    # DML it returns a CursorResult, which is where rowcount lives
    return cast("CursorResult[Any]", result).rowcount


def dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with ``ON CONFLICT`` support for the dialect in use: PostgreSQL's, else SQLite's."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class _HasId(Protocol):
    @property
    def id(self) -> int | None: ...


def pk(row: _HasId) -> int:
    """The id of a stored row. SQLModel types ``id`` as ``int | None`` (None until the insert
    is flushed); past that point it is an int, and this says so to the type checker."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet (not flushed)")
    return row.id
