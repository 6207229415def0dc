"""``onboarding.start`` on real databases: what the caller's identity already knows (the owner
linked to the Telegram user, or that none is) gives the same answer as the lookup it saves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.community import onboarding
from storage.models import Dealer, InviteToken, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
LINKED_TG, STRANGER_TG = 8101, 8102


@contextmanager
def owner_lookups_by_account(engine: Engine) -> Iterator[list[str]]:
    """Statements that look an owner up by Telegram account while the block runs."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:
        lowered = " ".join(statement.lower().split())
        if lowered.startswith("select") and "owner.telegram_user_id =" in lowered:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


@pytest.fixture
def seeded(engine) -> tuple[int, str]:
    """A verified owner linked to ``LINKED_TG`` and an unlinked owner with a live invite token."""
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        partner = Partner(name="P1", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        session.add(partner)
        session.flush()
        linked = Owner(name="Linked", partner_id=partner.id)
        invited = Owner(name="Invited", partner_id=partner.id)
        session.add_all([linked, invited])
        session.flush()
        onboarding.link_owner(session, linked, LINKED_TG, NOW - timedelta(days=3), "vin")
        session.add(InviteToken(token="tlive1", owner_id=invited.id, partner_id=partner.id, created_at=NOW))
        session.commit()
        return linked.id, "tlive1"


def _start(engine, user_id: int, token: str | None, **known) -> tuple[onboarding.StartResult, list[str]]:
    with Session(engine) as session, owner_lookups_by_account(engine) as lookups:
        result = onboarding.start(session, user_id, token, NOW, **known)
        session.rollback()
        return result, lookups


@pytest.mark.parametrize("token", [None, "tlive1", "tnosuch"])
def test_a_person_known_to_be_unlinked_costs_no_lookup_and_gets_the_same_answer(engine, seeded, token) -> None:
    looked_up, lookups = _start(engine, STRANGER_TG, token)
    assert lookups  # without the caller's knowledge, start() looks the account up
    known, skipped = _start(engine, STRANGER_TG, token, linked_owner_id=None)
    assert skipped == []
    assert known == looked_up
    assert known.kind is {None: onboarding.StartKind.plain, "tlive1": onboarding.StartKind.token_ok}.get(
        token, onboarding.StartKind.token_dead
    )


def test_a_linked_verified_owner_passed_by_the_caller_is_welcomed_back(engine, seeded) -> None:
    owner_id, token = seeded
    looked_up, _ = _start(engine, LINKED_TG, token)
    known, lookups = _start(engine, LINKED_TG, token, linked_owner_id=owner_id)
    assert lookups == []
    assert known == looked_up
    assert (known.kind, known.owner_id, known.owner_name) == (onboarding.StartKind.already_verified, owner_id, "Linked")
