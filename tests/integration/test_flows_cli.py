"""``autocircle flows check|runs`` and ``autocircle playbook show``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli.flows_cmd import app as flows_app
from bot.cli.flows_cmd import playbook_app
from flows.engine.flow_files import FLOWS_DIR
from flows.engine.runner import run_due_flows
from flows.templating import Renderer
from storage import clock
from storage.db import make_engine
from storage.events import EventKind, record
from storage.models import OutboxMessage, Owner

cli = typer.Typer()
cli.add_typer(flows_app, name="flows")
cli.add_typer(playbook_app, name="playbook")
runner = CliRunner()

BROKEN = """\
key: broken
trigger: {event: verified}
steps:
  - id: hello
    send: {template: flows/does_not_exist}
  - id: wait
    wait: {until: booking}
"""

NO_TEMPLATE = """\
key: lonely
trigger: {cell_entered: [mature/active]}
steps:
  - id: hello
    send: {template: flows/does_not_exist}
"""

PLAYBOOK = """\
passenger:
  mature/active: [lonely, ghost]
events:
  verified: [lonely]
"""


def test_the_shipped_library_checks_clean() -> None:
    result = runner.invoke(cli, ["flows", "check"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_check_prints_one_line_per_problem_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(cli, ["flows", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'broken.yaml'}:7: steps[1].wait: wait until an event needs a timeout" in result.output


def test_check_cross_checks_playbook_and_templates(tmp_path: Path) -> None:
    (tmp_path / "lonely.yaml").write_text(NO_TEMPLATE, encoding="utf-8")
    (tmp_path / "playbook.yaml").write_text(PLAYBOOK, encoding="utf-8")
    result = runner.invoke(cli, ["flows", "check", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line]
    assert lines == [
        f"{tmp_path / 'lonely.yaml'}:5: steps[0].send.template: template 'flows/does_not_exist' is missing for zh, en",
        f"{tmp_path / 'playbook.yaml'}:2: passenger.mature/active[1]: no flow has the key 'ghost'",
        f"{tmp_path / 'playbook.yaml'}:4: events.verified[0]: flow 'lonely' is not triggered by event verified",
    ]


def test_check_one_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    assert runner.invoke(cli, ["flows", "check", str(path)]).exit_code == 1
    assert runner.invoke(cli, ["flows", "check", str(FLOWS_DIR / "winback.yaml")]).exit_code == 0


def test_playbook_show_prints_the_matrix() -> None:
    result = runner.invoke(cli, ["playbook", "show"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("passenger", "commercial", "beginner_nudge", "winback", "referral_invite", "membership", "newcomer"):
        assert text in result.output


def test_runs_shows_runs_and_why(cli_env: str) -> None:
    engine = make_engine(cli_env)
    now = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    clock.set_now(lambda: now)
    try:
        with Session(engine) as s:
            owner = Owner(name="Li", telegram_user_id=5001, stage="verified", locale="en", external_id="C0042")
            guest = Owner(name="Guest", telegram_user_id=5002, stage="online")
            s.add_all([owner, guest])
            s.flush()
            record(s, owner.id, EventKind.verified, now)
            record(s, guest.id, EventKind.verified, now)
            s.commit()
            owner_id, guest_id = owner.id, guest.id
        from flows.engine.playbook import load_library

        library = load_library()
        run_due_flows(engine, Renderer(), library.flows, library.playbook, now)
        with Session(engine) as s:  # what the sender later made of the two queued messages
            welcome, gift_note = s.exec(
                select(OutboxMessage).where(col(OutboxMessage.owner_id) == owner_id).order_by(col(OutboxMessage.id))
            ).all()[:2]
            welcome.status, welcome.sent_at = "sent", now
            gift_note.status, gift_note.reason = "skipped", "opted_out"
            s.commit()
    finally:
        clock.set_now(None)
        engine.dispose()
    result = runner.invoke(cli, ["flows", "runs", "--owner", "C0042"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "newcomer" in result.output and "entered" in result.output and "queued" in result.output
    assert "sent 03-10 12:00" in result.output and "skipped: opted_out" in result.output
    assert "2026-03-10 12:00" in result.output  # the log's times are local (Asia/Shanghai)
    missing = runner.invoke(cli, ["flows", "runs", "--owner", "C9999"])
    assert missing.exit_code == 1 and "no owner 'C9999'" in missing.output
    result = runner.invoke(cli, ["flows", "runs", "--owner", str(guest_id)], env={"COLUMNS": "250"})
    assert "skipped" in result.output and "not verified" in result.output
