"""What a process runs: ``autocircle run --role web|sender|scheduler|all``.

* ``web``: takes updates (webhook or polling) and answers them; any number behind a balancer.
* ``sender``: drains the outbox; any number (rows are claimed with SKIP LOCKED, the rate and
  the per-chat turn are shared in Redis).
* ``scheduler``: a candidate for the scheduler leader; any number, exactly one runs the jobs.
* ``all``: the three in one process (the default, and the only choice on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    web = "web"
    sender = "sender"
    scheduler = "scheduler"
    all = "all"


@dataclass(frozen=True)
class Plan:
    """The parts a process starts."""

    updates: bool
    sender: bool
    scheduler: bool


def plan_for(role: Role | str) -> Plan:
    role = Role(role)
    return Plan(
        updates=role in (Role.web, Role.all),
        sender=role in (Role.sender, Role.all),
        scheduler=role in (Role.scheduler, Role.all),
    )


def check_role(role: Role | str, dialect: str) -> str | None:
    """Why ``role`` cannot run on this database, or None. SQLite keeps the single process: one
    writer, no advisory locks, no SKIP LOCKED."""
    if Role(role) is not Role.all and dialect == "sqlite":
        return "--role web|sender|scheduler needs PostgreSQL (SQLite keeps the single process: --role all)"
    return None
