"""`autocircle import owners|partners` through the real command line (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app as cli
from storage import clock

ROOT = Path(__file__).resolve().parents[2]
HEADER = "车主编号,姓名,手机号,车架号,产品线,购车日期,顾问编号,会员等级\n"
GOOD = "100001,张伟,13812345678,LFV2A21K8E3123456,乘用车,2023-01-05,A999,金卡\n"
BAD = "100002,陈静,12345,LGBH52E09KY123456,乘用车,2023/1/5,A101,\n"


@pytest.fixture(autouse=True)
def today() -> Iterator[None]:
    clock.set_now(lambda: datetime(2026, 11, 26, 4, 0, tzinfo=UTC))
    yield
    clock.set_now(None)


def run(*args: str):
    return CliRunner().invoke(cli, ["import", "owners", *args])


def test_import_prints_a_summary_and_writes_rejects_beside_the_file(cli_env: str, tmp_path: Path) -> None:
    source = tmp_path / "owners.csv"
    source.write_bytes((HEADER + GOOD + BAD).encode("gbk"))
    result = run(str(source))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 rows read" in out and "(csv, gbk)" in out
    assert "imported            1" in out
    assert "rejected            1" in out and "owners.rejects.csv" in out
    assert "unknown advisor codes: A999 (1)" in out
    assert "kept as owner attributes: 会员等级" in out
    rejects = (tmp_path / "owners.rejects.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rejects[0].startswith("line,column,reason,车主编号")
    assert rejects[1].startswith("3,手机号,not a valid")


def test_json_prints_one_object_and_nothing_else(cli_env: str, tmp_path: Path) -> None:
    source = tmp_path / "owners.csv"
    source.write_text(HEADER + GOOD + BAD, encoding="utf-8-sig")
    custom = tmp_path / "bad-rows.csv"
    result = run(str(source), "--json", "--rejects", str(custom))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("read", "imported", "updated", "unchanged", "rejected", "unassigned")} == {
        "read": 2,
        "imported": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "unassigned": 1,
    }
    assert data["unknown_advisor_codes"] == {"A999": 1}
    assert data["rejects_path"] == str(custom) and custom.exists()
    assert data["encoding"] == "utf-8-sig"
    assert isinstance(data["seconds"], float) and data["rows_per_s"] > 0

    again = json.loads(run(str(source), "--json", "--rejects", str(custom)).stdout)
    assert (again["imported"], again["unchanged"], again["rejected"]) == (0, 1, 1)


def test_the_sample_xlsx_imports(cli_env: str) -> None:
    result = run(str(ROOT / "examples" / "owners.xlsx"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["format"], data["read"], data["imported"], data["rejected"]) == ("xlsx", 40, 40, 0)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is not a CSV or XLSX file: it is a PNG image"),
        (bytes((i * 7919 + 13) % 256 for i in range(2048)), "is not a CSV or XLSX file"),
        (b"", "file is empty"),
        (
            "车主编号,姓名,手机号\n1,张伟,13812345678\n".encode(),
            "missing required columns: VIN/车架号, product line/产品线",
        ),
    ],
    ids=["png", "binary", "empty", "missing columns"],
)
def test_unreadable_files_exit_non_zero_with_one_line(
    cli_env: str, tmp_path: Path, content: bytes, reason: str
) -> None:
    source = tmp_path / "owners.csv"
    source.write_bytes(content)
    for args in ([str(source)], [str(source), "--json"]):
        result = run(*args)
        assert result.exit_code == 1
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and reason in lines[0], result.stderr


def test_a_missing_file_is_named(cli_env: str, tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: file not found: {tmp_path / 'nope.csv'}"


def test_import_partners_hands_over_to_the_partners_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[Path, bool]] = []
    monkeypatch.setattr(
        "bot.cli.partners_cmd.import_partners_command",
        lambda file, as_json: calls.append((file, as_json)),
        raising=False,
    )
    result = CliRunner().invoke(cli, ["import", "partners", str(tmp_path / "p.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "p.csv", True)]
