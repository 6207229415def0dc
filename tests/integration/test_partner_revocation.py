"""Invite links expire, partner accounts can be cut off, handover moves everything, and a
notice for an inactive partner is never sent (issue 11, items 2 and 4), on both databases."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.community import invites
from flows.community.handover import handover
from flows.community.partners import (
    create_partner,
    deactivate_partner,
    issue_registration_code,
    reactivate_partner,
    redeem_registration_code,
)
from flows.community.roles import Role, resolve_identity
from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Push, enqueue, screen
from flows.errors import InvalidInputError
from flows.service.bookings import followups
from flows.templating import Renderer
from storage import outbox
from storage.booking_models import Booking
from storage.db import make_engine, session_scope
from storage.models import InviteToken, OutboxMessage, Owner, Partner, Prospect, Vehicle
from storage.security_models import AuditEntry

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai: no quiet hours
A_TG, B_TG, OWNER_TG = 5001, 5002, 6001
LEASE = timedelta(seconds=30)
runner = CliRunner()


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOW)
    frozen.install()
    yield frozen
    uninstall()


def _aware(at: datetime) -> datetime:
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def _partner(session: Session, code: str, name: str = "Alice", tg: int | None = None) -> Partner:
    issued = create_partner(session, name=name, dealer_code="D001", advisor_code=code, role="sales", now=NOW)
    if tg is not None:
        redeem_registration_code(session, issued.code, tg, NOW)
    return session.get(Partner, issued.partner_id)


def _owner(session: Session, partner: Partner, ref: str, *, name: str = "Li", tg: int | None = None) -> Owner:
    owner = Owner(
        external_id=ref,
        name=name,
        partner_id=partner.id,
        advisor_code=partner.advisor_code,
        telegram_user_id=tg,
        stage="verified" if tg else "imported",
    )
    session.add(owner)
    session.flush()
    return owner


def _notice(session: Session, key: str, partner: Partner, owner: Owner | None = None, chat: int | None = None) -> None:
    """A partner notice as the flows queue one (booking request, fault, churn alert)."""
    assert enqueue(
        session,
        Push(
            dedupe_key=key,
            chat_id=chat or partner.telegram_user_id,
            partner_id=partner.id,
            owner_id=owner.id if owner else None,
            text=f"notice {key}",
        ),
    )


def _audit(engine: Engine, kind: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(AuditEntry).where(col(AuditEntry.kind) == kind).order_by(col(AuditEntry.id))
            ).scalars()
        )


def _by_key(engine: Engine) -> dict[str, OutboxMessage]:
    with Session(engine) as session:
        return {r.dedupe_key: r for r in session.execute(select(OutboxMessage)).scalars()}


def _screen(engine: Engine) -> dict[str, tuple[bool, str | None]]:
    """What the sender would do now with every due row: key -> (send, reason)."""
    claimed = outbox.claim_due(engine, NOW + timedelta(seconds=1), 100, LEASE)
    with Session(engine) as session:
        verdicts = {v.id: v for v in screen(session, claimed, NOW + timedelta(seconds=1), DeliveryPolicy())}
    return {k: (verdicts[r.id].send, verdicts[r.id].reason) for k, r in _by_key(engine).items() if r.id in verdicts}


# --- invite links expire ---------------------------------------------------------------------


def test_links_carry_an_expiry_and_an_expired_one_is_replaced_not_revived(engine: Engine) -> None:
    with session_scope(engine) as session:
        alice = _partner(session, "A101")
        _fresh, old, linked = (_owner(session, alice, r) for r in ("C1", "C2", "C3"))
        linked.telegram_user_id = 4242  # linked but, say, still "invited" in the funnel
        linked.stage = "invited"
        # issued before expiry existed: counts from created_at
        session.add(
            InviteToken(token="old-token", owner_id=old.id, partner_id=alice.id, created_at=NOW - timedelta(days=31))
        )
        session.add(InviteToken(token="linked-token", owner_id=linked.id, partner_id=alice.id, created_at=NOW))
        alice_id = alice.id
    with session_scope(engine) as session:
        rows = {
            r.external_id: r for r in invites.issue_invites(session, alice_id, "bot", NOW, valid_days=30, actor="cli")
        }
    assert set(rows) == {"C1", "C2"}  # never a linked owner's token
    assert rows["C2"].token != "old-token"
    assert rows["C1"].expires_at == rows["C2"].expires_at == NOW + timedelta(days=30)
    with Session(engine) as session:
        dead = session.execute(select(InviteToken).where(col(InviteToken.token) == "old-token")).scalar_one()
        assert _aware(dead.expires_at) == NOW - timedelta(days=1)  # written down: stays dead
        assert invites.token_expired(dead, NOW, valid_days=365)
        stored = session.execute(select(InviteToken).where(col(InviteToken.token) == rows["C1"].token)).scalar_one()
        assert _aware(stored.expires_at) == NOW + timedelta(days=30)
    # a live token is handed out again as it is; past its expiry a fresh one replaces it
    with session_scope(engine) as session:
        again = {
            r.external_id: r.token for r in invites.issue_invites(session, alice_id, "bot", NOW + timedelta(days=29))
        }
    assert again == {"C1": rows["C1"].token, "C2": rows["C2"].token}
    with session_scope(engine) as session:
        later = {
            r.external_id: r.token
            for r in invites.issue_invites(session, alice_id, "bot", NOW + timedelta(days=30), valid_days=7)
        }
    assert later["C1"] not in (rows["C1"].token, "old-token") and later["C2"] != rows["C2"].token
    [first, *_] = _audit(engine, "invites_issued")
    assert first.actor == "cli" and first.subject == "partner:A101"
    assert first.data["owners"] == 2 and first.data["fresh"] == 2


def test_token_expiry_helper_counts_old_tokens_from_created_at() -> None:
    legacy = InviteToken(token="t", owner_id=1, created_at=NOW.replace(tzinfo=None))  # as SQLite returns it
    assert invites.token_expiry(legacy, 30) == NOW + timedelta(days=30)
    assert not invites.token_expired(legacy, NOW + timedelta(days=29, hours=23), 30)
    assert invites.token_expired(legacy, NOW + timedelta(days=30), 30)
    explicit = InviteToken(token="u", owner_id=1, created_at=NOW, expires_at=NOW + timedelta(days=2))
    assert invites.token_expiry(explicit, 30) == NOW + timedelta(days=2)


def _seed_cli(url: str, *, old_token_age: timedelta | None = None) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        alice = _partner(session, "A101")
        owner = _owner(session, alice, "C1", name='=HYPERLINK("http://x","hi")')
        _owner(session, alice, "C2", name="@SUM(1+1)")
        if old_token_age is not None:
            session.add(
                InviteToken(
                    token="expired-token",
                    owner_id=owner.id,
                    partner_id=alice.id,
                    created_at=datetime.now(UTC) - old_token_age,
                )
            )
    engine.dispose()


def test_invites_export_issues_fresh_links_for_expired_ones(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_cli(cli_env, old_token_age=timedelta(days=10))
    monkeypatch.setenv("AUTOCIRCLE_SECURITY__INVITE_VALID_DAYS", "7")  # the 10-day-old link is dead
    result = runner.invoke(cli, ["invites", "export", "--partner", "A101"])
    assert result.exit_code == 0, result.output
    rows = {r["owner_id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["C1"]["token"] != "expired-token"
    engine = make_engine(cli_env)
    with Session(engine) as session:
        token = session.execute(select(InviteToken).where(col(InviteToken.token) == rows["C1"]["token"])).scalar_one()
        assert _aware(token.expires_at) - _aware(token.created_at) == timedelta(days=7)
    engine.dispose()


def test_invites_export_cells_are_never_formulas(cli_env: str, tmp_path: Path) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["invites", "export", "--partner", "A101"])
    assert result.exit_code == 0, result.output
    names = [r["name"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert names == ['\'=HYPERLINK("http://x","hi")', "'@SUM(1+1)"]
    out = tmp_path / "inv.xlsx"
    assert (
        runner.invoke(cli, ["invites", "export", "--partner", "A101", "--format", "xlsx", "--out", str(out)]).exit_code
        == 0
    )
    sheet = load_workbook(out).active
    cells = [c.value for c in sheet["B"]][1:]
    assert cells == names
    assert all(c.data_type == "s" for c in sheet["B"])
    rows = [invites.InviteRow(1, "\tX", "-1", "+86 138", "t", "l")]
    assert next(csv.reader(io.StringIO(invites.to_csv(rows).splitlines()[1]))) == ["'\tX", "'-1", "'+86 138", "t", "l"]


def test_invites_export_refuses_an_inactive_partner(cli_env: str) -> None:
    _seed_cli(cli_env)
    assert runner.invoke(cli, ["partners", "deactivate", "A101"]).exit_code == 0
    refused = runner.invoke(cli, ["invites", "export", "--partner", "A101"])
    assert refused.exit_code != 0
    assert "inactive" in refused.output and len(refused.output.strip().splitlines()) == 1


# --- partner accounts can be cut off -------------------------------------------------------


def test_deactivate_cuts_the_account_off_and_reactivate_brings_it_back(cli_env: str) -> None:
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        alice = _partner(session, "A101", tg=A_TG)
        owner = _owner(session, alice, "C1", tg=OWNER_TG)
        _notice(session, "booking:1:requested", alice, owner)
        enqueue(
            session,
            Push(dedupe_key="owner-msg", chat_id=OWNER_TG, owner_id=owner.id, partner_id=alice.id, text="to the owner"),
        )
    with Session(engine) as session:
        assert resolve_identity(session, A_TG, ()).role is Role.partner
    result = runner.invoke(cli, ["partners", "deactivate", "A101"])
    assert result.exit_code == 0, result.output
    assert "1 queued notice" in result.output
    with Session(engine) as session:
        identity = resolve_identity(session, A_TG, ())
        assert identity.role is Role.unknown and identity.partner_id is None
        assert session.execute(select(col(Partner.active))).scalar_one() is False
    rows = _by_key(engine)
    assert (rows["booking:1:requested"].status, rows["booking:1:requested"].reason) == ("skipped", "partner_inactive")
    assert rows["owner-msg"].status == "pending"  # the owner still hears from the bot
    assert "already inactive" in runner.invoke(cli, ["partners", "deactivate", "A101"]).output
    [entry] = _audit(engine, "partner_deactivated")
    assert (entry.actor, entry.subject, entry.data["telegram_user_id"]) == ("cli", "partner:A101", A_TG)

    listed = runner.invoke(cli, ["partners", "list", "--json"])
    assert '"active": false' in listed.output
    back = runner.invoke(cli, ["partners", "reactivate", "A101"])
    assert back.exit_code == 0 and "reactivated A101" in back.output
    with Session(engine) as session:
        assert resolve_identity(session, A_TG, ()).role is Role.partner
    assert len(_audit(engine, "partner_reactivated")) == 1
    unknown = runner.invoke(cli, ["partners", "deactivate", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    engine.dispose()


def test_a_deactivated_partner_cannot_register_with_an_outstanding_code(engine: Engine) -> None:
    from flows.errors import UnknownRegistrationCodeError

    with session_scope(engine) as session:
        issued = create_partner(session, name="A", dealer_code="D001", advisor_code="A101", role="sales", now=NOW)
        deactivate_partner(session, "A101", NOW)
    with pytest.raises(UnknownRegistrationCodeError), session_scope(engine) as session:
        redeem_registration_code(session, issued.code, A_TG, NOW)


def test_reissuing_a_code_unlinks_the_old_account_at_once(engine: Engine, clock: FrozenClock) -> None:
    with session_scope(engine) as session:
        alice = _partner(session, "A101", tg=A_TG)
        owner = _owner(session, alice, "C1")
        _notice(session, "churn:1", alice, owner)
    with session_scope(engine) as session:
        issued = issue_registration_code(session, "A101", NOW, actor="cli")
    assert issued.unlinked_telegram_user_id == A_TG
    with Session(engine) as session:
        assert resolve_identity(session, A_TG, ()).role is Role.unknown  # before any new redemption
        assert session.execute(select(col(Partner.telegram_user_id))).scalar_one() is None
    assert (_by_key(engine)["churn:1"].status, _by_key(engine)["churn:1"].reason) == (
        "skipped",
        "partner_account_changed",
    )
    registered = _audit(engine, "partner_registered")
    assert [(e.actor, e.subject) for e in registered] == [(f"user:{A_TG}", "partner:A101")]
    codes = _audit(engine, "partner_code_issued")
    assert [e.data["unlinked_telegram_user_id"] for e in codes] == [None, A_TG]
    with session_scope(engine) as session:
        redeem_registration_code(session, issued.code, B_TG, NOW)
    with Session(engine) as session:
        assert resolve_identity(session, B_TG, ()).role is Role.partner
        assert resolve_identity(session, A_TG, ()).role is Role.unknown


def test_cli_code_says_which_account_was_unlinked(cli_env: str) -> None:
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        _partner(session, "A101", tg=A_TG)
    engine.dispose()
    result = runner.invoke(cli, ["partners", "code", "A101"])
    assert result.exit_code == 0, result.output
    assert f"Telegram account {A_TG} unlinked" in result.output


# --- the send-time check -------------------------------------------------------------------


def test_send_time_check_stops_notices_for_inactive_or_unlinked_partners(engine: Engine, clock: FrozenClock) -> None:
    with session_scope(engine) as session:
        alice = _partner(session, "A101", tg=A_TG)
        bob = _partner(session, "B201", name="Bob", tg=B_TG)
        owner = _owner(session, alice, "C1", tg=OWNER_TG)
        for key, partner in (("alice-1", alice), ("bob-1", bob)):
            _notice(session, key, partner, owner)
        session.add(OutboxMessage(dedupe_key="no-partner", chat_id=A_TG, text="x"))
        enqueue(
            session,
            Push(dedupe_key="owner-msg", chat_id=OWNER_TG, owner_id=owner.id, partner_id=alice.id, text="to the owner"),
        )
    # the rows are already queued (a sender may even hold them) when the partners are cut off:
    # a raw update, not the services, so only the send-time check stands in the way
    with session_scope(engine) as session:
        session.get(Partner, alice.id).active = False
        session.get(Partner, bob.id).telegram_user_id = None
    verdicts = _screen(engine)
    assert verdicts["alice-1"] == (False, "partner_inactive")
    assert verdicts["no-partner"] == (False, "partner_inactive")
    assert verdicts["bob-1"] == (False, "partner_account_changed")
    assert verdicts["owner-msg"] == (True, None)


# --- handover moves everything -------------------------------------------------------------


def _handover_world(session: Session, *, carol_tg: int | None) -> dict[str, int]:
    alice = _partner(session, "A101", tg=A_TG)
    carol = _partner(session, "A102", name="Carol", tg=carol_tg)
    linked = _owner(session, alice, "C1", tg=OWNER_TG)
    linked.maturity, linked.activity = "mature", "declining"  # a follow-up: churn risk
    waiting = _owner(session, alice, "C2")
    session.add(InviteToken(token="tok-c2", owner_id=waiting.id, partner_id=alice.id, created_at=NOW))
    vehicle = Vehicle(owner_id=linked.id, vin="LSVAB2BJ7MN000001")
    session.add(vehicle)
    session.flush()
    for status in ("requested", "done"):
        session.add(
            Booking(
                owner_id=linked.id,
                vehicle_id=vehicle.id,
                partner_id=alice.id,
                dealer_code="D001",
                slot_start=NOW + timedelta(days=2),
                status=status,
            )
        )
    session.add(Prospect(telegram_user_id=7001, name="P", phone="+8613800000009", partner_id=alice.id))
    _notice(session, "booking:1:requested", alice, linked)
    _notice(session, "flow:notify", alice)  # a flow's notify_partner step names no owner
    session.flush()
    return {"alice": alice.id, "carol": carol.id, "linked": linked.id, "waiting": waiting.id}


def test_handover_moves_tokens_bookings_prospects_followups_and_queued_notices(
    engine: Engine, clock: FrozenClock
) -> None:
    with session_scope(engine) as session:
        ids = _handover_world(session, carol_tg=B_TG)
    with Session(engine) as session:
        assert [f.owner_id for f in followups(session, ids["alice"], NOW)] == [ids["linked"]]
    with session_scope(engine) as session:
        result = handover(session, Renderer(default_locale="en"), "A101", "A102", NOW, actor="user:900001")
    assert (result.owners_moved, result.invites_moved, result.bookings_moved, result.prospects_moved) == (2, 1, 1, 1)
    assert (result.notices_moved, result.notices_skipped) == (2, 0)
    with Session(engine) as session:
        assert session.execute(select(col(InviteToken.partner_id))).scalar_one() == ids["carol"]
        bookings = dict(session.execute(select(col(Booking.status), col(Booking.partner_id))).all())
        assert bookings == {"requested": ids["carol"], "done": ids["alice"]}  # history stays
        assert session.execute(select(col(Prospect.partner_id))).scalar_one() == ids["carol"]
        assert followups(session, ids["alice"], NOW) == []
        assert [f.owner_id for f in followups(session, ids["carol"], NOW)] == [ids["linked"]]
        assert resolve_identity(session, A_TG, ()).role is Role.unknown
    rows = _by_key(engine)
    for key in ("booking:1:requested", "flow:notify"):
        assert (rows[key].chat_id, rows[key].partner_id, rows[key].status) == (B_TG, ids["carol"], "pending")
    verdicts = _screen(engine)
    assert verdicts["booking:1:requested"] == (True, None)
    assert all(row.chat_id != A_TG for row in _by_key(engine).values())
    [entry] = _audit(engine, "handover")
    assert (entry.actor, entry.subject, entry.data["to"], entry.data["notices_moved"]) == (
        "user:900001",
        "partner:A101",
        "A102",
        2,
    )


def test_handover_to_a_partner_not_yet_on_telegram_drops_the_notices(engine: Engine, clock: FrozenClock) -> None:
    with session_scope(engine) as session:
        _handover_world(session, carol_tg=None)
    with session_scope(engine) as session:
        result = handover(session, Renderer(default_locale="en"), "A101", "A102", NOW)
    assert (result.notices_moved, result.notices_skipped) == (0, 2)
    rows = _by_key(engine)
    assert {(rows[k].status, rows[k].reason) for k in ("booking:1:requested", "flow:notify")} == {
        ("skipped", "partner_not_registered")
    }
    sendable = {k for k, (send, _) in _screen(engine).items() if send}
    assert sendable and {rows[k].chat_id for k in sendable} == {OWNER_TG}  # only "your advisor is now Carol"


def test_handover_refuses_an_inactive_target(engine: Engine) -> None:
    with session_scope(engine) as session:
        _partner(session, "A101")
        _partner(session, "A102", name="Carol")
        deactivate_partner(session, "A102", NOW)
    with pytest.raises(InvalidInputError, match="inactive"), session_scope(engine) as session:
        handover(session, Renderer(default_locale="en"), "A101", "A102", NOW)
    with session_scope(engine) as session:
        reactivate_partner(session, "A102", NOW)
        deactivate_partner(session, "A101", NOW)  # cut off first, then hand over: the usual order
    with session_scope(engine) as session:
        assert handover(session, Renderer(default_locale="en"), "A101", "A102", NOW).to_code == "A102"


# --- a cut-off partner's own posts and campaigns stop ----------------------------------------


def _posts_and_campaigns(session: Session, partner: Partner, owner: Owner) -> dict[str, int]:
    """A weekly circle post and a scheduled campaign of ``partner``, as the bot makes them."""
    from flows.growth import campaigns, circle_posts
    from storage.models import Circle

    circle = Circle(partner_id=partner.id, chat_id=-100_777, title="Alice's circle")
    session.add(circle)
    session.flush()
    author = circle_posts.Author(partner_id=partner.id)
    post = circle_posts.create_post(
        session, author, circle.id, circle_posts.parse_post("weekly TUE 13:00 Alice's tip"), NOW, "Asia/Shanghai"
    )
    campaign = campaigns.create(session, partner.id, ["beginner/active"], NOW, text="Alice says hi")
    campaigns.schedule(session, partner.id, campaign.id, NOW + timedelta(hours=2), NOW)
    draft = campaigns.create(session, partner.id, ["beginner/active"], NOW, text="Later")
    return {"post": post.id, "campaign": campaign.id, "draft": draft.id, "circle": circle.id, "owner": owner.id}


def _nothing_of_theirs_goes_out(engine: Engine, ids: dict[str, int]) -> None:
    from flows.growth import campaigns, circle_posts
    from storage.campaign_models import Campaign
    from storage.post_models import CirclePost

    later = NOW + timedelta(days=7)
    with session_scope(engine) as session:
        assert circle_posts.plan_due_posts(session, Renderer(default_locale="en"), later, "Asia/Shanghai") == 0
        assert campaigns.send_due(session, Renderer(default_locale="en"), later) == []
    with Session(engine) as session:
        assert session.get(CirclePost, ids["post"]).active is False
        assert {session.get(Campaign, ids[k]).status for k in ("campaign", "draft")} == {"cancelled"}
        assert session.execute(select(OutboxMessage).where(col(OutboxMessage.chat_id) == -100_777)).first() is None


def test_deactivating_a_partner_stops_their_circle_posts_and_campaigns(engine: Engine, clock: FrozenClock) -> None:
    with session_scope(engine) as session:
        alice = _partner(session, "A101", tg=A_TG)
        ids = _posts_and_campaigns(session, alice, _owner(session, alice, "C1", tg=OWNER_TG))
    with session_scope(engine) as session:
        state = deactivate_partner(session, "A101", NOW, actor="user:900001")
    assert (state.posts_stopped, state.campaigns_cancelled) == ((ids["post"],), (ids["campaign"], ids["draft"]))
    _nothing_of_theirs_goes_out(engine, ids)
    [entry] = _audit(engine, "partner_deactivated")
    assert entry.data["stopped_reason"] == "partner deactivated"
    assert (entry.data["posts_stopped"], entry.data["campaigns_cancelled"]) == (
        [ids["post"]],
        [ids["campaign"], ids["draft"]],
    )


def test_handover_stops_the_leaving_partner_s_posts_in_the_circle_that_moves(
    engine: Engine, clock: FrozenClock
) -> None:
    with session_scope(engine) as session:
        alice = _partner(session, "A101", tg=A_TG)
        _partner(session, "A102", name="Carol", tg=B_TG)
        ids = _posts_and_campaigns(session, alice, _owner(session, alice, "C1", tg=OWNER_TG))
    with session_scope(engine) as session:
        result = handover(session, Renderer(default_locale="en"), "A101", "A102", NOW)
    assert (result.circles_moved, result.posts_stopped, result.campaigns_cancelled) == (1, 1, 2)
    _nothing_of_theirs_goes_out(engine, ids)
    [entry] = _audit(engine, "handover")
    assert entry.data["stopped_reason"] == "partner handed over"
    assert entry.data["campaigns_cancelled"] == [ids["campaign"], ids["draft"]]


def test_an_online_owner_not_yet_linked_gets_a_fresh_link_once_theirs_expired(engine: Engine) -> None:
    """``/start`` with a link makes its owner ``online``; until they verify, issuing (``/invites``,
    ``invites export``) keeps covering them, with a fresh link once theirs has expired."""
    from flows.community import onboarding

    with session_scope(engine) as session:
        alice = _partner(session, "A101")
        owner = _owner(session, alice, "C1")
        [row] = invites.issue_invites(session, alice.id, "bot", NOW)
        assert onboarding.start(session, OWNER_TG, row.token, NOW).kind is onboarding.StartKind.token_ok
        assert owner.stage == "online" and owner.telegram_user_id is None
        alice_id = alice.id
    with session_scope(engine) as session:
        assert [r.token for r in invites.issue_invites(session, alice_id, "bot", NOW + timedelta(days=1))] == [
            row.token
        ]
        [fresh] = invites.issue_invites(session, alice_id, "bot", NOW + timedelta(days=30))
    assert fresh.external_id == "C1" and fresh.token != row.token
    with session_scope(engine) as session:
        later = onboarding.start(session, OWNER_TG, fresh.token, NOW + timedelta(days=30))
        assert later.kind is onboarding.StartKind.token_ok
