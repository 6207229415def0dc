"""`autocircle audit`: operator actions and security events as rows, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from bot.cli.main import app as cli
from storage.audit import AuditKind, record_audit
from storage.clock import utcnow
from storage.db import make_engine, session_scope


def _json_rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_every_cli_command_is_an_operator_action_with_its_outcome(cli_env: str) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(
            cli,
            [
                "partners",
                "add",
                "--name",
                "Alice",
                "--dealer-code",
                "D001",
                "--advisor-code",
                "A101",
                "--role",
                "sales",
            ],
        ).exit_code
        == 0
    )
    refused = runner.invoke(cli, ["partners", "handover", "NOPE", "A101"])
    assert refused.exit_code != 0
    listed = runner.invoke(cli, ["audit", "--format", "json", "--kind", "operator_action"])
    assert listed.exit_code == 0, listed.output
    rows = _json_rows(listed.stdout)
    assert [(r["subject"], r["data"]["outcome"]) for r in rows] == [
        ("partners add", "ok"),
        ("partners handover", "refused"),
    ]
    assert rows[1]["data"]["params"] == {"from_code": "NOPE", "to_code": "A101"}
    assert all(r["actor"] == "cli" for r in rows)


def test_since_and_kind_filter_and_a_bad_since_is_one_line(cli_env: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["partners", "list"]).exit_code == 0  # the schema exists from here on
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        record_audit(
            session, AuditKind.verification_locked, actor="user:5", subject="owner:1", at=utcnow() - timedelta(days=3)
        )
        record_audit(session, AuditKind.verification_failed, actor="user:5", subject="owner:1", reason="not_found")
    engine.dispose()
    recent = _json_rows(
        runner.invoke(
            cli,
            [
                "audit",
                "--format",
                "json",
                "--since",
                "1d",
                "--kind",
                "verification_failed",
                "--kind",
                "verification_locked",
            ],
        ).stdout
    )
    assert [(r["kind"], r["data"]) for r in recent] == [("verification_failed", {"reason": "not_found"})]
    everything = _json_rows(runner.invoke(cli, ["audit", "--format", "json", "--since", "2000-01-01"]).stdout)
    assert {r["kind"] for r in everything} >= {"verification_locked", "verification_failed", "operator_action"}
    bad = runner.invoke(cli, ["audit", "--since", "yesterday"])
    assert bad.exit_code != 0
    assert "--since 'yesterday'" in bad.output and "Traceback" not in bad.output
    table = runner.invoke(cli, ["audit"])
    assert table.exit_code == 0 and "verification_locked" in table.stdout


def test_secret_parameters_never_reach_the_log() -> None:
    from bot.cli.common import _is_secret, _masked_args

    assert _is_secret("code") and _is_secret("--bot-token") and _is_secret("webhook_secret")
    assert not _is_secret("from_code") and not _is_secret("advisor")
    assert _masked_args(["partners", "register", "--code", "K7QX", "--token=abc", "--partner", "A1"]) == [
        "partners",
        "register",
        "--code",
        "***",
        "--token=***",
        "--partner",
        "A1",
    ]
