"""The owner import on real databases (SQLite and PostgreSQL via the ``engine`` fixture)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from storage import clock
from storage.importing import ImportFileError, ImportProgress, ImportSummary, import_owners
from storage.models import Dealer, Event, Owner, Partner, Vehicle
from tests.support.owner_files import ZH, write_csv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

VIN1, VIN2, VIN3, VIN4 = "LFV2A21K8E3123456", "LGBH52E09KY123456", "LVSHCAME5CF123456", "LGXCE4CB5M0123456"


def row(
    owner_id: str = "100001",
    name: str = "张伟",
    phone: str = "13812345678",
    vin: str = VIN1,
    plate: str = "沪A12345",
    model: str = "轩逸",
    line: str = "乘用车",
    bought: str = "2023-01-05",
    dealer: str = "D001",
    advisor: str = "A101",
    serviced: str = "2026-05-01",
    serviced_km: str = "12,000",
    km: str = "15000",
    note: str = "",
) -> list[str]:
    return [owner_id, name, phone, vin, plate, model, line, bought, dealer, advisor, serviced, serviced_km, km, note]


@pytest.fixture(autouse=True)
def today() -> Iterator[None]:
    """The sample data's day: 2026-11-26, noon in Shanghai."""
    clock.set_now(lambda: datetime(2026, 11, 26, 4, 0, tzinfo=UTC))
    yield
    clock.set_now(None)


@pytest.fixture
def partners(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        dealer = conn.execute(
            Dealer.__table__.insert().values(code="D001", name="上海浦东店", created_at=clock.utcnow())
        ).inserted_primary_key[0]
        ids = {}
        for code in ("A101", "A102"):
            ids[code] = conn.execute(
                Partner.__table__.insert().values(
                    name=f"顾问{code}",
                    dealer_id=dealer,
                    advisor_code=code,
                    role="sales",
                    active=True,
                    created_at=clock.utcnow(),
                )
            ).inserted_primary_key[0]
    return ids


def owners(engine: Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.external_id: r._asdict() for r in conn.execute(select(Owner.__table__))}


def vehicles(engine: Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.vin: r._asdict() for r in conn.execute(select(Vehicle.__table__))}


def events(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [r._asdict() for r in conn.execute(select(Event.__table__).order_by(Event.__table__.c.id))]


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_counts_add_up(summary: ImportSummary) -> None:
    assert summary.read == summary.imported + summary.updated + summary.unchanged + summary.rejected


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "reported"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gbk"), ("gb18030", "gb18030")],
)
def test_csv_encodings(engine: Engine, tmp_path: Path, encoding: str, reported: str) -> None:
    # 䶮 (CJK extension A) exists in GB18030 but not in GBK: it makes that file GB18030.
    name = "刘䶮" if encoding == "gb18030" else "刘龑"
    path = write_csv(tmp_path / "owners.csv", [row(name=name), row("100002", "陈静", vin=VIN2)], encoding=encoding)
    summary = import_owners(engine, path)
    assert (summary.format, summary.encoding) == ("csv", reported)
    assert (summary.read, summary.imported, summary.rejected) == (2, 2, 0)
    stored = owners(engine)
    assert stored["100001"]["name"] == name
    assert stored["100002"]["name"] == "陈静"


def test_xlsx_with_date_cells_serials_and_number_cells(engine: Engine, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(
        [
            "Owner ID",
            "Name",
            "Phone",
            "VIN",
            "Product line",
            "Purchase date",
            "Last service date",
            "Last service (km)",
            "Mileage (km)",
            "Member tier",
        ]
    )
    sheet.append([100001, "张伟", 13812345678, VIN1, "passenger", datetime(2023, 1, 5), 46000, 12000.0, 15000, "金卡"])
    sheet.append(
        [100002, "陈静", "+86 139 1234 5678", VIN2, "商用车", date(2022, 3, 1), "2025/6/1", "8,000", "9,500", None]
    )
    sheet.append([None] * 10)  # an empty row in the middle is skipped
    sheet.append([100003, "王芳", 13700000000, VIN3, "卡车", 44927, None, None, None, None])
    path = tmp_path / "owners.xlsx"
    book.save(path)

    summary = import_owners(engine, path)
    assert (summary.format, summary.encoding) == ("xlsx", None)
    assert (summary.read, summary.imported, summary.rejected) == (3, 2, 1)
    assert summary.extra_columns == ("Member tier",)
    stored, cars = owners(engine), vehicles(engine)
    assert stored["100001"]["phone"] == "+8613812345678"
    assert stored["100001"]["attributes"] == {"Member tier": "金卡"}
    assert stored["100002"]["product_line"] == "commercial"
    assert cars[VIN1]["purchase_date"] == date(2023, 1, 5)
    assert cars[VIN1]["last_service_date"] == date(2025, 12, 9)  # Excel serial 46000
    assert (cars[VIN1]["last_service_km"], cars[VIN1]["mileage_km"]) == (12000, 15000)
    assert cars[VIN2]["last_service_date"] == date(2025, 6, 1)
    rejects = read_rejects(Path(summary.rejects_path))
    assert [(r["line"], r["column"]) for r in rejects] == [("5", "Product line")]  # sheet row 5
    assert (rejects[0]["Owner ID"], rejects[0]["Purchase date"]) == ("100003", "44927")  # as in the cell


def test_title_rows_above_the_header_are_skipped(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "owners.csv"
    body = io.StringIO(newline="")
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(["车主信息导出 2026-11-01"])
    writer.writerow([])
    writer.writerow(ZH)
    writer.writerow(row())
    writer.writerow(row("100002", vin="BAD"))
    path.write_text(body.getvalue(), encoding="utf-8")
    summary = import_owners(engine, path)
    assert (summary.read, summary.imported, summary.rejected) == (2, 1, 1)
    assert read_rejects(Path(summary.rejects_path))[0]["line"] == "5"


def test_semicolon_and_tab_separated_files(engine: Engine, tmp_path: Path) -> None:
    for delimiter, name in ((";", "a.csv"), ("\t", "b.txt")):
        out = io.StringIO(newline="")
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow(ZH)
        writer.writerow(row(owner_id=name, vin=VIN1 if name == "a.csv" else VIN2, serviced_km="12000"))
        (tmp_path / name).write_text(out.getvalue(), encoding="utf-8")
        summary = import_owners(engine, tmp_path / name)
        assert (summary.imported, summary.rejected) == (1, 0)


# --- file-level failures --------------------------------------------------------------------


def test_file_problems_raise_one_line(engine: Engine, tmp_path: Path) -> None:
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    noise = tmp_path / "noise.csv"
    noise.write_bytes(bytes((i * 7919) % 256 for i in range(4096)))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"\xef\xbb\xbf\r\n\r\n")
    fake_xlsx = tmp_path / "fake.xlsx"
    fake_xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    no_vin = write_csv(tmp_path / "no_vin.csv", [["1", "张伟", "乘用车"]], header=["车主编号", "姓名", "产品线"])
    cases = {
        png: "not a CSV or XLSX file: it is a PNG image",
        noise: "not a CSV or XLSX file",
        empty: "file is empty",
        blank: "file is empty",
        fake_xlsx: "not a CSV or XLSX file",
        no_vin: "missing required column: VIN/车架号",
        tmp_path / "missing.csv": "file not found",
        tmp_path: "not a file",
    }
    for path, reason in cases.items():
        with pytest.raises(ImportFileError) as caught:
            import_owners(engine, path)
        assert reason in str(caught.value), path
        assert "\n" not in str(caught.value)
    assert owners(engine) == {}


def test_a_header_without_rows_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    summary = import_owners(engine, write_csv(tmp_path / "o.csv", []))
    assert (summary.read, summary.imported, summary.rejects_path) == (0, 0, None)


# --- validation and the rejects file --------------------------------------------------------


def test_bad_rows_are_rejected_with_file_lines_and_good_rows_import(engine: Engine, tmp_path: Path) -> None:
    rows = [
        row("100001"),
        row("100002", vin="LSVAU2I8OQ2183045"),  # line 3: I, O, Q
        row("100003", vin="LFV2A21K8E312345"),  # line 4: 16 characters
        row("100004", vin=VIN2, phone="12345"),  # line 5
        row("100005", vin=VIN3, bought="2027-03-15"),  # line 6: future
        row("100006", vin=VIN3, serviced_km="58,000", km="41000"),  # line 7
        row("100007", vin=VIN3, serviced="2023-13-45"),  # line 8
        row("100008", vin=VIN3, line="卡车"),  # line 9
        row("100009", vin=VIN1),  # line 10: VIN of line 2 under another owner id
        row("100010", name="", phone="12345", vin=VIN4, bought="2099-1-1"),  # line 11: three problems
    ]
    path = write_csv(tmp_path / "owners.csv", rows)
    summary = import_owners(engine, path)
    assert_counts_add_up(summary)
    assert (summary.read, summary.imported, summary.rejected) == (10, 1, 9)
    assert summary.rejects_path == str(tmp_path / "owners.rejects.csv")
    rejects = read_rejects(tmp_path / "owners.rejects.csv")
    assert [(r["line"], r["column"]) for r in rejects] == [
        ("3", "车架号"),
        ("4", "车架号"),
        ("5", "手机号"),
        ("6", "购车日期"),
        ("7", "当前里程"),
        ("8", "最近保养日期"),
        ("9", "产品线"),
        ("10", "车架号"),
        ("11", "姓名; 手机号; 购车日期"),
    ]
    reasons = [r["reason"] for r in rejects]
    assert "I, O, Q" in reasons[0]
    assert "16 characters" in reasons[1]
    assert "not a valid" in reasons[2]
    assert "in the future" in reasons[3]
    assert "below the last service" in reasons[4]
    assert "not a real date: 2023-13-45" in reasons[5]
    assert "got 卡车" in reasons[6]
    assert reasons[7] == f"VIN {VIN1} already belongs to owner id 100001"
    assert reasons[8].count("; ") == 2
    # the original values follow, under the original headers
    assert rejects[0]["车架号"] == "LSVAU2I8OQ2183045"
    assert rejects[4]["最近保养里程"] == "58,000"
    assert list(rejects[0])[:4] == ["line", "column", "reason", "车主编号"]
    assert set(owners(engine)) == {"100001"}


def test_line_numbers_follow_the_file_past_a_quoted_newline(engine: Engine, tmp_path: Path) -> None:
    rows = [row("100001", note="第一行\n第二行"), row("100002", vin="BAD"), row("100003", vin=VIN2, phone="1")]
    path = write_csv(tmp_path / "owners.csv", rows)
    summary = import_owners(engine, path)
    assert [r["line"] for r in read_rejects(Path(summary.rejects_path))] == ["4", "5"]
    assert owners(engine)["100001"]["attributes"] == {"备注": "第一行\n第二行"}


def test_undecodable_bytes_reject_their_row_only(engine: Engine, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "tmp.csv", [row(), row("100002", name="陈静", vin=VIN2)]).read_bytes()
    path = tmp_path / "owners.csv"
    path.write_bytes(good.replace("陈静".encode(), b"\xff\xfe"))
    summary = import_owners(engine, path)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert "not valid utf-8" in read_rejects(Path(summary.rejects_path))[0]["reason"]


def test_rejects_path_option_and_a_clean_run_removes_a_stale_file(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "out" / "bad.csv"
    target.parent.mkdir()
    path = write_csv(tmp_path / "owners.csv", [row(), row("100002", vin="BAD")])
    assert import_owners(engine, path, rejects_path=target).rejects_path == str(target)
    assert len(read_rejects(target)) == 1
    write_csv(path, [row()])
    summary = import_owners(engine, path, rejects_path=target)
    assert summary.rejects_path is None
    assert not target.exists()


def test_a_corrected_rejects_file_imports_as_it_is(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "owners.csv", [row(), row("100002", vin=VIN2, phone="12345")])
    summary = import_owners(engine, path)
    rejects = Path(summary.rejects_path)
    rejects.write_text(
        rejects.read_text(encoding="utf-8-sig").replace(",12345,", ",13912345678,"), encoding="utf-8-sig"
    )
    again = import_owners(engine, rejects)
    assert (again.imported, again.rejected, again.extra_columns) == (1, 0, ("备注",))
    assert owners(engine)["100002"]["phone"] == "+8613912345678"


def test_future_means_after_today_in_the_given_timezone(engine: Engine, tmp_path: Path) -> None:
    # 2026-11-26 17:00 UTC is already 2026-11-27 in Shanghai.
    clock.set_now(lambda: datetime(2026, 11, 26, 17, 0, tzinfo=UTC))
    path = write_csv(tmp_path / "owners.csv", [row(bought="2026-11-27")])
    assert import_owners(engine, path, timezone="UTC").rejected == 1
    assert import_owners(engine, path).imported == 1  # Asia/Shanghai by default


# --- upsert, idempotence, events ------------------------------------------------------------


def test_reimport_changes_nothing(engine: Engine, tmp_path: Path, partners: dict[str, int]) -> None:
    rows = [
        row(note="老客户"),
        row("100002", "陈静", vin=VIN2, advisor="A999"),
        row("100001", vin=VIN3, plate="沪AD12345", note="老客户"),
        row("100003", vin="BAD"),
    ]
    path = write_csv(tmp_path / "owners.csv", rows, encoding="gbk")
    first = import_owners(engine, path)
    assert (first.imported, first.owners_created, first.rejected) == (3, 2, 1)
    before = (owners(engine), vehicles(engine))
    events_before = events(engine)

    second = import_owners(engine, path, batch_size=2)
    assert_counts_add_up(second)
    assert (second.read, second.imported, second.updated, second.unchanged, second.rejected) == (4, 0, 0, 3, 1)
    assert (owners(engine), vehicles(engine)) == before
    assert events(engine) == events_before


def test_a_changed_row_updates_and_records_an_event(engine: Engine, tmp_path: Path, partners: dict[str, int]) -> None:
    path = write_csv(tmp_path / "owners.csv", [row(note="老客户"), row("100002", "陈静", vin=VIN2)])
    import_owners(engine, path)
    with engine.begin() as conn:  # the owner moved on in the funnel meanwhile
        conn.execute(update(Owner.__table__).where(Owner.__table__.c.external_id == "100001").values(stage="online"))

    write_csv(
        path, [row(phone="13912345678", km="18,000", note="金牌客户", advisor="A102"), row("100002", "陈静", vin=VIN2)]
    )
    summary = import_owners(engine, path)
    assert (summary.imported, summary.updated, summary.unchanged) == (0, 1, 1)
    owner = owners(engine)["100001"]
    assert (owner["phone"], owner["stage"], owner["partner_id"]) == ("+8613912345678", "online", partners["A102"])
    assert owner["attributes"] == {"备注": "金牌客户"}
    assert vehicles(engine)[VIN1]["mileage_km"] == 18000
    [event] = events(engine)
    assert (event["kind"], event["owner_id"]) == ("owner_updated", owner["id"])
    assert event["data"]["changes"] == {
        "phone": ["+8613812345678", "+8613912345678"],
        "advisor_code": ["A101", "A102"],
        "partner_id": [partners["A101"], partners["A102"]],
        "attributes.备注": ["老客户", "金牌客户"],
        "mileage_km": [15000, 18000],
    }
    assert (event["data"]["vin"], event["data"]["line"]) == (VIN1, 2)
    assert import_owners(engine, path).unchanged == 2
    assert len(events(engine)) == 1


def test_a_new_car_for_a_known_owner_is_an_update_event(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "owners.csv", [row()])
    import_owners(engine, path)
    write_csv(path, [row(), row(vin=VIN2, plate="沪B54321")])
    summary = import_owners(engine, path)
    assert (summary.imported, summary.unchanged, summary.owners_created) == (1, 1, 0)
    assert {v["owner_id"] for v in vehicles(engine).values()} == {owners(engine)["100001"]["id"]}
    [event] = events(engine)
    assert event["data"]["changes"] == {"vin": [None, VIN2]}


def test_columns_missing_from_a_file_keep_their_stored_values(engine: Engine, tmp_path: Path) -> None:
    import_owners(engine, write_csv(tmp_path / "full.csv", [row(note="老客户")]))
    partial = write_csv(
        tmp_path / "partial.csv",
        [["100001", "张伟", VIN1, "乘用车", "16000"]],
        header=["车主编号", "姓名", "车架号", "产品线", "当前里程"],
    )
    summary = import_owners(engine, partial)
    assert summary.updated == 1
    owner, car = owners(engine)["100001"], vehicles(engine)[VIN1]
    assert (owner["phone"], owner["advisor_code"], owner["attributes"]) == (
        "+8613812345678",
        "A101",
        {"备注": "老客户"},
    )
    assert (car["plate"], car["last_service_km"], car["mileage_km"]) == ("沪A12345", 12000, 16000)
    assert events(engine)[0]["data"]["changes"] == {"mileage_km": [15000, 16000]}
    assert import_owners(engine, partial).unchanged == 1


def test_unknown_advisor_codes_import_unassigned_and_are_listed(
    engine: Engine, tmp_path: Path, partners: dict[str, int]
) -> None:
    rows = [
        row(),
        row("100002", vin=VIN2, advisor="A999"),
        row("100003", vin=VIN3, advisor="a999"),
        row("100004", vin=VIN4, advisor=""),
    ]
    path = write_csv(tmp_path / "owners.csv", rows)
    summary = import_owners(engine, path)
    assert summary.unassigned == 3
    assert summary.unknown_advisor_codes == (("A999", 2),)
    assert summary.to_dict()["unknown_advisor_codes"] == {"A999": 2}
    stored = owners(engine)
    assert stored["100001"]["partner_id"] == partners["A101"]
    assert (stored["100002"]["partner_id"], stored["100002"]["advisor_code"]) == (None, "A999")
    assert stored["100004"]["advisor_code"] is None

    with engine.begin() as conn:  # the partner arrives later: re-importing assigns, never guesses
        dealer_id = conn.execute(select(Dealer.__table__.c.id)).scalar()
        conn.execute(
            Partner.__table__.insert().values(
                name="新顾问",
                dealer_id=dealer_id,
                advisor_code="A999",
                role="sales",
                active=True,
                created_at=clock.utcnow(),
            )
        )
    again = import_owners(engine, path)
    assert (again.updated, again.unassigned, again.unknown_advisor_codes) == (2, 1, ())
    assert owners(engine)["100002"]["partner_id"] is not None


def test_dealers_are_created_for_unseen_codes(engine: Engine, tmp_path: Path, partners: dict[str, int]) -> None:
    path = write_csv(
        tmp_path / "o.csv", [row(), row("100002", vin=VIN2, dealer="D002"), row("100003", vin=VIN3, dealer="")]
    )
    assert import_owners(engine, path).dealers_created == ("D002",)
    with engine.connect() as conn:
        assert sorted(conn.execute(select(Dealer.__table__.c.code)).scalars()) == ["D001", "D002"]


# --- duplicates within one file -------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1000, 2], ids=["one batch", "across batches"])
def test_duplicates_within_a_file(engine: Engine, tmp_path: Path, batch_size: int) -> None:
    rows = [
        row("100001"),  # 2
        row("100001", vin=VIN2, plate="沪B11111"),  # 3: second car of the same owner
        row("100001"),  # 4: exact repeat of line 2: unchanged
        row("100001", km="16000"),  # 5: same VIN, other mileage: conflicting duplicate
        row("100002", vin=VIN1),  # 6: same VIN under another owner id
        row("100001", vin=VIN3, phone="13900000000"),  # 7: same owner id, other phone
        row("100003", vin=VIN4),  # 8
    ]
    path = write_csv(tmp_path / "owners.csv", rows)
    summary = import_owners(engine, path, batch_size=batch_size)
    assert_counts_add_up(summary)
    assert (summary.imported, summary.unchanged, summary.rejected, summary.owners_created) == (3, 1, 3, 2)
    rejects = {int(r["line"]): r for r in read_rejects(Path(summary.rejects_path))}
    assert rejects[5]["reason"] == f"VIN {VIN1} appears earlier in this file with different 当前里程"
    assert rejects[6]["reason"] == f"VIN {VIN1} already belongs to owner id 100001"
    assert rejects[7]["reason"] == "owner id 100001 appears earlier in this file with different 手机号"
    assert rejects[7]["column"] == "车主编号"
    assert vehicles(engine)[VIN1]["mileage_km"] == 15000  # the first row wins
    assert owners(engine)["100001"]["phone"] == "+8613812345678"
    # and the same file again is a no-op, rejects included
    again = import_owners(engine, path, batch_size=batch_size)
    assert (again.imported, again.updated, again.unchanged, again.rejected) == (0, 0, 4, 3)
    assert events(engine) == []


def test_a_vin_owned_by_another_owner_id_in_the_database_is_rejected(engine: Engine, tmp_path: Path) -> None:
    import_owners(engine, write_csv(tmp_path / "a.csv", [row()]))
    summary = import_owners(engine, write_csv(tmp_path / "b.csv", [row("200001", "李娜")]))
    assert summary.rejected == 1
    assert read_rejects(Path(summary.rejects_path))[0]["reason"] == f"VIN {VIN1} already belongs to owner id 100001"


def test_rows_without_owner_id_are_keyed_by_vin_and_can_gain_one(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", [row(owner_id=""), row(owner_id="", vin=VIN2, name="陈静")])
    assert import_owners(engine, path).owners_created == 2
    assert import_owners(engine, path).unchanged == 2
    summary = import_owners(engine, write_csv(tmp_path / "p.csv", [row(owner_id="100001")]))
    assert (summary.updated, summary.owners_created) == (1, 0)
    assert owners(engine)["100001"]["name"] == "张伟"
    assert events(engine)[0]["data"]["changes"] == {"external_id": [None, "100001"]}


# --- progress, batches, the sample files ----------------------------------------------------


def test_progress_is_reported_per_batch(engine: Engine, tmp_path: Path) -> None:
    vins = [VIN1, VIN2, VIN3, VIN4, "LFV2A21K8E3123457"]
    path = write_csv(tmp_path / "o.csv", [row(str(100001 + i), vin=v) for i, v in enumerate(vins)])
    seen: list[ImportProgress] = []
    summary = import_owners(engine, path, batch_size=2, progress=seen.append)
    assert [p.rows for p in seen] == [2, 4, 5]
    assert seen[-1].unit == "bytes" and seen[-1].done == seen[-1].total == path.stat().st_size
    assert summary.imported == 5
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Vehicle.__table__)).scalar() == 5


def test_the_sample_files_import_as_the_readme_says(engine: Engine, tmp_path: Path) -> None:
    rejects = tmp_path / "owners.rejects.csv"
    summary = import_owners(engine, EXAMPLES / "owners.csv", rejects_path=rejects)
    assert (summary.format, summary.encoding) == ("csv", "gbk")
    assert (summary.read, summary.imported, summary.owners_created, summary.rejected) == (317, 309, 300, 8)
    assert [int(r["line"]) for r in read_rejects(rejects)] == [22, 58, 94, 135, 176, 217, 258, 299]
    assert dict(summary.unknown_advisor_codes)["A999"] == 4
    assert summary.extra_columns == ("会员等级", "备注")
    xlsx = import_owners(engine, EXAMPLES / "owners.xlsx", rejects_path=tmp_path / "x.csv")
    assert (xlsx.read, xlsx.imported, xlsx.updated, xlsx.rejected) == (40, 10, 30, 0)
    assert len(events(engine)) == 30


@pytest.mark.slow
def test_the_benchmark_reports_rate_floor_and_memory() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_import.py"), "--rows", "5000", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT, timeout=300)
    data = json.loads(out.stdout)
    assert data["rows"] == 5000
    assert data["rate"] > 0 and data["floor_rate"] > 0
    assert data["ratio"] == pytest.approx(data["rate"] / data["floor_rate"], rel=0.01)
    assert 0 < data["peak_rss_mb"] < 300
