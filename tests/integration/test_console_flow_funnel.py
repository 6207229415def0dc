"""The console's flow funnel on the real flow engine, both databases: each owner counts once
per run however many log rows the run wrote (two pushes, a step skipped twice), a second run
of the same owner counts again, and entries the rules refused (no run) count owners apart."""

from __future__ import annotations

from sqlmodel import Session, col, select
from test_flow_runner import SIMPLE, _event, _flows, _owner, _pass, now, renderer  # noqa: F401

from flows.console import figures
from storage.events import EventKind
from storage.flow_models import FlowRunLog
from storage.models import Dealer, Owner, Partner


def test_each_owner_counts_once_per_run(engine, renderer, tmp_path, now) -> None:  # noqa: F811
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{cooldown: 1d}"))
    twice = _owner(engine, tg=5001)  # two runs, two pushes in each
    silent = _owner(engine, tg=None, name="No TG")  # both sends skipped: no Telegram account
    eager = _owner(engine, tg=5003, name="Eager")  # one run, refused twice while it is live
    for owner in (twice, silent, eager):
        _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    for hours in (1, 2):
        _event(engine, eager, EventKind.verified, now.advance(hours=hours))
        _pass(engine, renderer, flows, now)
    now.advance(days=2)
    _pass(engine, renderer, flows, now)  # second pushes, runs done
    _event(engine, twice, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    now.advance(days=2)
    _pass(engine, renderer, flows, now)

    with Session(engine) as session:
        rows = session.exec(select(col(FlowRunLog.outcome)).where(col(FlowRunLog.flow_key) == "simple")).all()
        assert rows.count("queued") == 6 and rows.count("skipped") == 4  # rows, not runs
        [f] = figures.flow_funnels(session, figures.Scope())
    assert (f.entered, f.sent, f.done) == (4, 3, 4)
    assert f.skipped == {"no Telegram account": 1}  # one run, two rows
    assert f.refused == {"live run": 1}  # one owner, two refusals


def test_a_partner_sees_their_owners_runs_only(engine, renderer, tmp_path, now) -> None:  # noqa: F811
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="D")
        session.add(dealer)
        session.flush()
        alice = Partner(name="A", dealer_id=dealer.id, advisor_code="A1")
        session.add(alice)
        session.flush()
        alice_id = alice.id
        session.commit()
    mine = _owner(engine, tg=5101, partner_id=alice_id)
    other = _owner(engine, tg=5102)
    for owner in (mine, other):
        _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    with Session(engine) as session:
        [f] = figures.flow_funnels(session, figures.Scope(partner_id=alice_id))
        assert session.get(Owner, other).partner_id is None
    assert (f.entered, f.sent) == (1, 1)
