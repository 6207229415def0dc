"""Partners on a real database: create, list, codes (issue, redeem, expire, reuse), file import, CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from openpyxl import Workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli.main import app as cli
from bot.cli.partners_cmd import import_partners_command
from flows.community.partners import (
    CODE_TTL,
    PartnerRow,
    create_partner,
    hash_registration_code,
    import_partners,
    issue_registration_code,
    list_partners,
    read_partner_file,
    redeem_registration_code,
)
from flows.errors import (
    DuplicatePartnerError,
    ExpiredRegistrationCodeError,
    InvalidFileError,
    PartnerNotFoundError,
    RegistrationError,
    TelegramAccountInUseError,
    UnknownRegistrationCodeError,
    UsedRegistrationCodeError,
)
from storage.db import session_scope
from storage.models import Dealer, Owner, Partner

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).parents[2] / "examples" / "partners.csv"
CODE_IN_OUTPUT = re.compile(r"\b([2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{2})\b")


def _add(session: Session, advisor_code: str = "A101", dealer_code: str = "D001", **kw):
    return create_partner(
        session,
        name=kw.pop("name", "王磊"),
        dealer_code=dealer_code,
        advisor_code=advisor_code,
        role=kw.pop("role", "sales"),
        now=kw.pop("now", NOW),
        **kw,
    )


# --- create / list ------------------------------------------------------------------------


def test_create_partner_makes_dealer_and_stores_only_a_hash(engine: Engine) -> None:
    with session_scope(engine) as session:
        issued = _add(session, dealer_name="上海浦东店")
    assert issued.expires_at == NOW + CODE_TTL == NOW + timedelta(days=7)
    with Session(engine) as session:
        partner = session.exec(select(Partner)).one()
        dealer = session.exec(select(Dealer)).one()
        assert (dealer.code, dealer.name) == ("D001", "上海浦东店")
        assert partner.dealer_id == dealer.id
        assert partner.role == "sales"
        assert partner.registration_code_hash == hash_registration_code(issued.code)
        stored = " ".join(str(v) for v in partner.model_dump().values())
        assert issued.code not in stored
        assert issued.code.replace("-", "") not in stored
        assert partner.registered_at is None and partner.telegram_user_id is None


def test_second_partner_reuses_the_dealer(engine: Engine) -> None:
    with session_scope(engine) as session:
        _add(session, "A101")
        _add(session, "A102", name="陈静", role="服务", dealer_name="上海浦东店")
    with Session(engine) as session:
        dealers = session.exec(select(Dealer)).all()
        assert [(d.code, d.name) for d in dealers] == [("D001", "上海浦东店")]
        roles = {p.advisor_code: p.role for p in session.exec(select(Partner))}
        assert roles == {"A101": "sales", "A102": "service"}


def test_duplicate_advisor_code_is_refused(engine: Engine) -> None:
    with session_scope(engine) as session:
        _add(session, "A101")
    with pytest.raises(DuplicatePartnerError, match="A101"), session_scope(engine) as session:
        _add(session, "A101", name="别人")
    with Session(engine) as session:
        assert len(session.exec(select(Partner)).all()) == 1


def test_list_partners_counts_owners_and_links(engine: Engine) -> None:
    with session_scope(engine) as session:
        a101 = _add(session, "A101")
        _add(session, "A201", "D002", name="李娜")
        session.add_all([Owner(name=f"车主{i}", partner_id=a101.partner_id) for i in range(3)] + [Owner(name="无主")])
        redeem_registration_code(session, a101.code, 5001, NOW)
    with Session(engine) as session:
        partners = list_partners(session)
    assert [(p.advisor_code, p.dealer_code, p.owners) for p in partners] == [
        ("A101", "D001", 3),
        ("A201", "D002", 0),
    ]
    assert partners[0].telegram_linked and partners[0].registration_status(NOW) == "registered"
    assert not partners[1].telegram_linked
    assert partners[1].registration_status(NOW) == "pending"
    assert partners[1].registration_status(NOW + timedelta(days=8)) == "expired"


# --- redeem ---------------------------------------------------------------------------------


def test_redeem_links_the_telegram_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        issued = _add(session)
    later = NOW + timedelta(days=2)
    with session_scope(engine) as session:
        partner = redeem_registration_code(session, issued.code.lower().replace("-", " "), 4242, later)
        assert partner.advisor_code == "A101"
    with Session(engine) as session:
        partner = session.exec(select(Partner)).one()
        assert partner.telegram_user_id == 4242
        assert partner.registered_at == later


@pytest.mark.parametrize("wrong", ["", "hello", "K7QX-M3PR-TW", "K7QX-M3PR-TW-22", "0000-0000-00"])
def test_wrong_code_is_unknown(engine: Engine, wrong: str) -> None:
    with session_scope(engine) as session:
        _add(session)
    with pytest.raises(UnknownRegistrationCodeError), session_scope(engine) as session:
        redeem_registration_code(session, wrong, 4242, NOW)


def test_code_expires_after_seven_days(engine: Engine) -> None:
    with session_scope(engine) as session:
        issued = _add(session)
    with pytest.raises(ExpiredRegistrationCodeError), session_scope(engine) as session:
        redeem_registration_code(session, issued.code, 4242, NOW + CODE_TTL)
    with session_scope(engine) as session:
        redeem_registration_code(session, issued.code, 4242, NOW + CODE_TTL - timedelta(seconds=1))


def test_code_is_one_time(engine: Engine) -> None:
    with session_scope(engine) as session:
        issued = _add(session)
    with session_scope(engine) as session:
        redeem_registration_code(session, issued.code, 4242, NOW)
    for user in (4242, 9999):
        with pytest.raises(UsedRegistrationCodeError), session_scope(engine) as session:
            redeem_registration_code(session, issued.code, user, NOW + timedelta(minutes=1))
    with Session(engine) as session:
        assert session.exec(select(Partner)).one().telegram_user_id == 4242


def test_racing_redemptions_spend_the_code_once(engine: Engine) -> None:
    """The second session still holds the partner as unregistered; the UPDATE must not win."""
    with session_scope(engine) as session:
        issued = _add(session)
    with Session(engine, expire_on_commit=False) as late:
        stale = late.exec(select(Partner)).one()  # held, so the identity map keeps it stale
        with session_scope(engine) as first:
            redeem_registration_code(first, issued.code, 1111, NOW)
        assert stale.registered_at is None
        with pytest.raises(UsedRegistrationCodeError):
            redeem_registration_code(late, issued.code, 2222, NOW)
        late.rollback()
    with Session(engine) as session:
        assert session.exec(select(Partner)).one().telegram_user_id == 1111


def test_reissue_invalidates_the_old_code(engine: Engine) -> None:
    with session_scope(engine) as session:
        old = _add(session)
    with session_scope(engine) as session:
        new = issue_registration_code(session, "A101", NOW + timedelta(days=6))
    assert new.code != old.code
    assert new.expires_at == NOW + timedelta(days=13)
    with pytest.raises(UnknownRegistrationCodeError), session_scope(engine) as session:
        redeem_registration_code(session, old.code, 4242, NOW + timedelta(days=6))
    with session_scope(engine) as session:
        redeem_registration_code(session, new.code, 4242, NOW + timedelta(days=10))


def test_reissue_after_registration_lets_a_new_account_take_over(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = _add(session)
        redeem_registration_code(session, first.code, 1111, NOW)
    with session_scope(engine) as session:
        second = issue_registration_code(session, "A101", NOW + timedelta(days=30))
    with session_scope(engine) as session:
        redeem_registration_code(session, second.code, 2222, NOW + timedelta(days=31))
    with Session(engine) as session:
        assert session.exec(select(Partner)).one().telegram_user_id == 2222


def test_reissue_for_unknown_partner(engine: Engine) -> None:
    with pytest.raises(PartnerNotFoundError), session_scope(engine) as session:
        issue_registration_code(session, "NOPE", NOW)


def test_one_telegram_account_is_one_partner(engine: Engine) -> None:
    with session_scope(engine) as session:
        a = _add(session, "A101")
        b = _add(session, "A102", name="陈静")
        redeem_registration_code(session, a.code, 4242, NOW)
    with pytest.raises(TelegramAccountInUseError), session_scope(engine) as session:
        redeem_registration_code(session, b.code, 4242, NOW)
    assert issubclass(TelegramAccountInUseError, RegistrationError)


# --- import ---------------------------------------------------------------------------------


def test_import_example_file_then_again_is_unchanged(engine: Engine) -> None:
    rows = read_partner_file(EXAMPLE)
    assert [r.line for r in rows] == [2, 3, 4, 5, 6, 7]
    with session_scope(engine) as session:
        result = import_partners(session, rows, NOW)
    assert (result.created, result.updated, result.unchanged, result.rejected) == (6, 0, 0, ())
    assert sorted(c.advisor_code for c in result.codes) == ["A101", "A102", "A201", "A202", "A301", "A302"]
    with session_scope(engine) as session:
        again = import_partners(session, read_partner_file(EXAMPLE), NOW)
    assert (again.created, again.updated, again.unchanged, again.codes) == (0, 0, 6, ())
    with Session(engine) as session:
        dealers = {d.code: d.name for d in session.exec(select(Dealer))}
    assert dealers == {"D001": "上海浦东店", "D002": "北京朝阳店", "D003": "广州天河店"}


def test_import_updates_known_partners_and_reports_bad_rows(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        _add(session, "A101", name="王磊", role="sales")
        _add(session, "A102", name="陈静", role="service")
        _add(session, "A301", "D003", name="刘洋", role="service")
    path = tmp_path / "partners.csv"
    path.write_text(
        "name,dealer code,advisor code,role\n"
        "王磊,D001,A101,service\n"  # 2: role changed -> updated
        "陈静,D001,A102,服务\n"  # 3: unchanged
        ",D001,A103,sales\n"  # 4: no name
        "赵六,D001,A104,boss\n"  # 5: bad role
        "\n"  # 6: blank, skipped
        "孙七,D001,A105,sales\n"  # 7: created
        "孙七二,D001,A105,sales\n"  # 8: repeats line 7
        "刘洋,D009,A301,service\n"  # 9: other dealer
        "周八,,A106,sales\n",  # 10: no dealer code
        encoding="utf-8",
    )
    with session_scope(engine) as session:
        result = import_partners(session, read_partner_file(path), NOW)
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [4, 5, 8, 9, 10]
    assert "name" in reasons[4]
    assert "boss" in reasons[5]
    assert "line 7" in reasons[8]
    assert "D003" in reasons[9] and "D009" in reasons[9]
    assert "dealer code" in reasons[10]
    assert [c.advisor_code for c in result.codes] == ["A105"]
    with Session(engine) as session:
        roles = {p.advisor_code: p.role for p in session.exec(select(Partner))}
    assert roles == {"A101": "service", "A102": "service", "A105": "sales", "A301": "service"}


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_import_reads_gbk_and_bom_files(engine: Engine, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "partners.csv"
    path.write_bytes(EXAMPLE.read_text(encoding="utf-8").encode(encoding))
    rows = read_partner_file(path)
    assert rows[0] == PartnerRow(2, "王磊", "D001", "上海浦东店", "A101", "销售")
    with session_scope(engine) as session:
        assert import_partners(session, rows, NOW).created == 6


def test_import_reads_xlsx(engine: Engine, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["顾问编号", "姓名", "岗位", "经销商代码"])
    sheet.append([101, "王磊", "销售", "D001"])
    sheet.append([None, None, None, None])
    sheet.append(["A102", "陈静", "服务", "D001"])
    path = tmp_path / "partners.xlsx"
    book.save(path)
    rows = read_partner_file(path)
    assert [(r.line, r.advisor_code, r.role) for r in rows] == [(2, "101", "销售"), (4, "A102", "服务")]
    with session_scope(engine) as session:
        assert import_partners(session, rows, NOW).created == 2


def test_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partners.csv"
    path.write_text("姓名,经销商代码\n王磊,D001\n", encoding="utf-8")
    with pytest.raises(InvalidFileError, match="advisor code, role"):
        read_partner_file(path)
    pdf = tmp_path / "partners.csv"
    pdf.write_bytes(b"%PDF-1.7\n...")
    with pytest.raises(InvalidFileError, match="not a CSV or XLSX file: it is a PDF document"):
        read_partner_file(pdf)
    with pytest.raises(InvalidFileError, match="file not found"):
        read_partner_file(tmp_path / "missing.csv")


def test_partner_files_as_people_save_them(engine: Engine, tmp_path: Path) -> None:
    """A title line above the header, semicolons, an XLSX saved with a .csv name, and a row
    with a byte that is not text: the readable rows import, the bad one is reported."""
    path = tmp_path / "partners.csv"
    path.write_bytes(
        "2026年顾问名单;;;\n姓名;经销商代码;顾问编号;岗位\n王磊;D001;A101;销售\n".encode("gbk")
        + b"\xff\xfe\xfd;D001;A102;sales\n"
        + "陈静;D001;A103;服务\n".encode("gbk")
    )
    rows = read_partner_file(path)
    assert [(r.line, r.advisor_code, r.problem is None) for r in rows] == [
        (3, "A101", True),
        (4, "A102", False),
        (5, "A103", True),
    ]
    with session_scope(engine) as session:
        result = import_partners(session, rows, NOW)
    assert result.created == 2 and [r.line for r in result.rejected] == [4]
    book = Workbook()
    book.active.append(["name", "dealer code", "advisor code", "role"])
    book.active.append(["Li", "D002", "B201", "sales"])
    renamed = tmp_path / "export.csv"
    book.save(renamed)
    assert [r.advisor_code for r in read_partner_file(renamed)] == ["B201"]


# --- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def _code(output: str) -> str:
    match = CODE_IN_OUTPUT.search(output)
    assert match, output
    return match.group(1)


def test_cli_add_list_and_duplicate(cli_env: str) -> None:
    args = ["partners", "add", "--name", "王磊", "--dealer-code", "D001", "--advisor-code", "A101"]
    result = runner.invoke(cli, [*args, "--role", "sales", "--dealer-name", "上海浦东店"])
    assert result.exit_code == 0, result.output
    code = _code(result.output)
    assert "expires" in result.output

    duplicate = runner.invoke(cli, [*args, "--role", "service"])
    assert duplicate.exit_code != 0
    assert "already exists" in duplicate.output
    assert len(duplicate.output.strip().splitlines()) == 1

    listed = runner.invoke(cli, ["partners", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [partner] = json.loads(listed.output)
    assert partner["advisor_code"] == "A101"
    assert partner["dealer_name"] == "上海浦东店"
    assert partner["registration"] == "pending"
    assert partner["telegram_linked"] is False and partner["owners"] == 0

    table = runner.invoke(cli, ["partners", "list"])
    assert table.exit_code == 0, table.output
    assert "A101" in table.output and "王磊" in table.output

    engine_url = cli_env
    from storage.db import make_engine

    engine = make_engine(engine_url)
    try:
        with session_scope(engine) as session:
            redeem_registration_code(session, code, 4242, datetime.now(UTC))
    finally:
        engine.dispose()


def test_cli_code_reissues(cli_env: str) -> None:
    added = runner.invoke(
        cli,
        ["partners", "add", "--name", "李娜", "--dealer-code", "D002", "--advisor-code", "A201", "--role", "sales"],
    )
    assert added.exit_code == 0, added.output
    reissued = runner.invoke(cli, ["partners", "code", "A201"])
    assert reissued.exit_code == 0, reissued.output
    assert _code(reissued.output) != _code(added.output)

    unknown = runner.invoke(cli, ["partners", "code", "NOPE"])
    assert unknown.exit_code != 0
    assert "NOPE" in unknown.output


def _import_cli() -> typer.Typer:
    """Stand-in for ``autocircle import partners``, which another module wires to our function."""
    app = typer.Typer()

    @app.command()
    def partners(file: Path, as_json: bool = typer.Option(False, "--json")) -> None:
        import_partners_command(file, as_json)

    return app


def test_cli_import_json_and_table(cli_env: str, tmp_path: Path) -> None:
    bad = tmp_path / "more.csv"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8") + "孙七,D001,上海浦东店,A103,经理\n", encoding="gbk")
    result = runner.invoke(_import_cli(), [str(bad), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert (payload["created"], payload["updated"], payload["unchanged"]) == (6, 0, 0)
    assert payload["rejected"] == [{"line": 8, "reason": "unknown role '经理': use sales|service|销售|服务"}]
    assert set(payload["codes"]) == {"A101", "A102", "A201", "A202", "A301", "A302"}
    assert all(CODE_IN_OUTPUT.fullmatch(c) for c in payload["codes"].values())

    again = runner.invoke(_import_cli(), [str(EXAMPLE)])
    assert again.exit_code == 0, again.output
    assert "unchanged 6" in again.output


def test_cli_import_prints_codes_table(cli_env: str) -> None:
    result = runner.invoke(_import_cli(), [str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "created 6" in result.output
    assert len(CODE_IN_OUTPUT.findall(result.output)) == 6


def test_cli_import_unusable_file_is_one_line(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    result = runner.invoke(_import_cli(), [str(path)])
    assert result.exit_code != 0
    assert "missing column" in result.output
