"""Service history and telematics files on real databases (SQLite and PostgreSQL).

Both go through the importer's machinery (readers, header aliases, rejects file with line,
column and reason) and through ``flows.service.due`` for what a row means.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from flows.service.due import ServiceRowApplier
from flows.service.service_plan import FaultPolicy, OdometerLimits
from flows.service.telematics import TelematicsRowApplier
from flows.templating import Renderer
from storage import clock
from storage.importing import ImportFileError, import_owners
from storage.importing.services import import_services
from storage.importing.telematics import import_telematics
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner, Vehicle
from storage.service_models import OdometerReading, ServiceRecord, VehicleFault

NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # noon in Shanghai
VIN1, VIN2, VIN3 = "LFV2A21K8E3123456", "LGBH52E09KY123456", "LVSHCAME5CF123456"
LIMITS = OdometerLimits(max_km_per_day=1_500, timezone="Asia/Shanghai")
PARTNER_TG, OWNER_TG = 5001, 6001


@pytest.fixture(autouse=True)
def today() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


@pytest.fixture
def cars(engine: Engine) -> dict[str, int]:
    """Three cars: VIN1 (owner online, with a partner on Telegram), VIN2 (owner not on the bot,
    imported with a last service), VIN3 (another owner, nothing known)."""
    with Session(engine) as session:
        dealer = Dealer(code="D001", name="Pudong")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Wang", dealer_id=dealer.id, advisor_code="A101", telegram_user_id=PARTNER_TG)
        session.add(partner)
        session.flush()
        ids = {}
        for ext, vin, tg, extra in (
            ("C1", VIN1, OWNER_TG, {}),
            (
                "C2",
                VIN2,
                None,
                {"last_service_date": date(2026, 5, 1), "last_service_km": 12_000, "mileage_km": 15_000},
            ),
            ("C3", VIN3, None, {}),
        ):
            owner = Owner(external_id=ext, name=f"Owner {ext}", partner_id=partner.id, telegram_user_id=tg)
            session.add(owner)
            session.flush()
            vehicle = Vehicle(owner_id=owner.id, vin=vin, model="Sylphy", purchase_date=date(2024, 1, 15), **extra)
            session.add(vehicle)
            session.flush()
            ids[vin] = vehicle.id
        session.commit()
    return ids


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8-sig")
    return path


def services(engine: Engine, path: Path, **kwargs):
    return import_services(engine, path, ServiceRowApplier(LIMITS, f"import:{path.name}"), batch_size=3, **kwargs)


def telematics(engine: Engine, path: Path, **kwargs):
    applier = TelematicsRowApplier(
        Renderer(default_locale="en"), LIMITS, FaultPolicy(), f"import:{path.name}", clock.utcnow
    )
    return import_telematics(engine, path, applier, batch_size=3, **kwargs)


def rejects_of(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))


def vehicle(engine: Engine, vin: str) -> Vehicle:
    with Session(engine) as session:
        return session.execute(select(Vehicle).where(col(Vehicle.vin) == vin)).scalar_one()


def count(engine: Engine, query) -> int:
    with Session(engine) as session:
        return session.execute(query).scalar_one()


SERVICE_HEADER = ["车架号", "保养日期", "进厂里程", "保养项目", "备注"]


# --- services --------------------------------------------------------------------------------


def test_services_import_records_visits_updates_cars_and_rejects_bad_rows(engine: Engine, cars, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "services.csv",
        SERVICE_HEADER,
        [
            [VIN1, "2024-07-10", "5,100", "机油、机滤", ""],  # line 2
            [VIN1, "2025/7/2", "15020", "机油; 机滤; 空滤", ""],  # 3
            ["LSVAB2BJ7MN999999", "2025-07-02", "100", "", ""],  # 4: unknown VIN
            [VIN2, "2027-01-01", "20000", "", ""],  # 5: future
            [VIN3, "", "abc", "", "x"],  # 6: two problems
            [VIN2, "2026-11-01", "21000", "机油", ""],  # 7
            [VIN1, "2025-01-01", "16000", "", ""],  # 8: more km than the later visit
        ],
    )
    summary = services(engine, source)
    assert (summary.read, summary.imported, summary.unchanged, summary.rejected) == (7, 3, 0, 4)
    assert summary.count("unknown_vins") == 1 and summary.ignored_columns == ("备注",)
    rejects = rejects_of(tmp_path / "services.rejects.csv")
    assert rejects[0][:4] == ["line", "column", "reason", "车架号"]
    by_line = {row[0]: row for row in rejects[1:]}
    assert by_line["4"][1] == "车架号" and "no vehicle with VIN" in by_line["4"][2]
    assert by_line["5"][1:3] == ["保养日期", "date 2027-01-01 is in the future (today is 2026-11-26)"]
    assert by_line["6"][1] == "保养日期; 进厂里程" and by_line["6"][2].startswith(
        "required value is missing; not a number"
    )
    assert by_line["8"][1] == "进厂里程" and "16000 km is above the 15020 km recorded later" in by_line["8"][2]

    car1, car2 = vehicle(engine, VIN1), vehicle(engine, VIN2)
    assert (car1.last_service_date, car1.last_service_km, car1.mileage_km) == (date(2025, 7, 2), 15_020, 15_020)
    assert (car2.last_service_date, car2.last_service_km, car2.mileage_km) == (date(2026, 11, 1), 21_000, 21_000)
    with Session(engine) as session:
        items = session.execute(select(col(ServiceRecord.items)).where(col(ServiceRecord.km) == 15_020)).scalar_one()
        assert items == ["机油", "机滤", "空滤"]
        visits = session.execute(
            select(col(Owner.external_id), func.count(col(Event.id)))
            .outerjoin(Event, (col(Event.owner_id) == col(Owner.id)) & (col(Event.kind) == "service_visit"))
            .group_by(col(Owner.id), col(Owner.external_id))
            .order_by(col(Owner.id))
        ).all()
        assert visits == [("C1", 2), ("C2", 1), ("C3", 0)]
        # none of them has come online: imported visits do not count toward maturity (issue 15)
        assert session.execute(select(func.sum(col(Owner.service_visits)))).scalar_one() == 0
        event = session.execute(
            select(Event).where(col(Event.kind) == "service_visit", col(Event.owner_id) == car2.owner_id)
        ).scalar_one()
        assert event.at == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # the visit's day, local noon
        assert event.data["km"] == 21_000 and event.data["vin"] == VIN2


def test_services_reimport_is_idempotent_and_first_row_wins(engine: Engine, cars, tmp_path: Path) -> None:
    rows = [
        [VIN1, "2025-07-02", "15000", "oil", ""],
        [VIN1, "2025-07-02", "15000", "oil", ""],  # exact repeat: unchanged
        [VIN1, "2025-07-02", "15000", "oil, air filter", ""],  # same visit, other items: refused
        [VIN3, "2026-02-02", "8000", "", ""],
    ]
    source = write_csv(tmp_path / "s.csv", SERVICE_HEADER, rows)
    first = services(engine, source)
    assert (first.imported, first.unchanged, first.rejected) == (2, 1, 1)
    assert "appears earlier in this file with other items" in rejects_of(tmp_path / "s.rejects.csv")[1][2]
    events = count(engine, select(func.count()).select_from(Event).where(col(Event.kind) == "service_visit"))

    again = services(engine, source)
    assert (again.imported, again.updated, again.unchanged, again.rejected) == (0, 0, 3, 1)
    assert count(engine, select(func.count()).select_from(ServiceRecord)) == 2
    assert (
        count(engine, select(func.count()).select_from(Event).where(col(Event.kind) == "service_visit")) == events == 2
    )

    fixed = write_csv(tmp_path / "s2.csv", SERVICE_HEADER, [[VIN1, "2025-07-02", "15000", "oil; air filter", ""]])
    corrected = services(engine, fixed)
    assert (corrected.updated, corrected.rejected) == (1, 0)
    assert not (tmp_path / "s2.rejects.csv").exists()


def test_older_history_does_not_move_the_last_service_back(engine: Engine, cars, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "old.csv", ["VIN", "Date", "Km"], [[VIN2, "2025-04-20", "6000"]])
    summary = services(engine, source)
    assert summary.imported == 1
    car2 = vehicle(engine, VIN2)
    assert (car2.last_service_date, car2.last_service_km, car2.mileage_km) == (date(2026, 5, 1), 12_000, 15_000)


def test_services_from_xlsx_with_typed_cells(engine: Engine, cars, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Service history export"])
    sheet.append(["VIN", "Service date", "Mileage (km)", "Items"])
    sheet.append([VIN3, datetime(2026, 3, 3), 9_000.0, "oil"])
    sheet.append([VIN3, "2026-09-09", "not km", None])
    path = tmp_path / "history.xlsx"
    book.save(path)
    summary = services(engine, path)
    assert (summary.format, summary.imported, summary.rejected) == ("xlsx", 1, 1)
    assert rejects_of(tmp_path / "history.rejects.csv")[1][:2] == ["4", "Mileage (km)"]


def test_a_file_without_the_required_columns_is_refused(engine: Engine, cars, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "x.csv", ["VIN", "Items"], [[VIN1, "oil"]])
    with pytest.raises(ImportFileError, match="missing required columns: service date/保养日期, km/进厂里程"):
        services(engine, source)


# --- telematics --------------------------------------------------------------------------------

TELEMATICS_HEADER = ["VIN", "Odometer (km)", "Time", "DTC"]


def test_telematics_import_applies_readings_tells_about_recent_faults_and_rejects(
    engine: Engine, cars, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "tbox.csv",
        TELEMATICS_HEADER,
        [
            [VIN1, "20,000", "2026-11-20 08:00", ""],  # 2: local time
            [VIN1, "21000", "2026-11-25T10:00:00+08:00", "P0301"],  # 3: recent fault → alerts
            [VIN2, "16000", "2026-10-01T00:00:00Z", "p0420 P0420"],  # 4: old fault → no alert
            [VIN2, "14000", "2026-11-01T00:00:00Z", ""],  # 5: below the 16,000 of Oct 1
            [VIN3, "90000", "2026-11-24T00:00:00Z", ""],  # 6: no earlier value: accepted
            [VIN3, "99000", "2026-11-25T00:00:00Z", ""],  # 7: +9,000 km in a day
            ["LSVAB2BJ7MN999999", "100", "2026-11-25T00:00:00Z", ""],  # 8: unknown VIN
            [VIN1, "21500", "2026-12-01T00:00:00Z", ""],  # 9: in the future
            [VIN1, "-5", "yesterday", "P03@1"],  # 10: three bad cells
        ],
    )
    summary = telematics(engine, source)
    assert (summary.read, summary.imported, summary.rejected) == (9, 4, 5)
    assert (summary.count("unknown_vins"), summary.count("new_faults"), summary.count("alerts")) == (1, 2, 2)
    by_line = {row[0]: row for row in rejects_of(tmp_path / "tbox.rejects.csv")[1:]}
    assert set(by_line) == {"5", "7", "8", "9", "10"}
    assert by_line["5"][1] == "Odometer (km)" and "14000 km is below the 16000 km" in by_line["5"][2]
    assert "implausible" in by_line["7"][2] and "at most 91500 km" in by_line["7"][2]
    assert by_line["8"][1] == "VIN"
    assert by_line["9"][2] == "the time is in the future"
    assert by_line["10"][1] == "Odometer (km); Time; DTC"

    with Session(engine) as session:
        at = session.execute(select(col(OdometerReading.at)).where(col(OdometerReading.km) == 20_000)).scalar_one()
        assert at == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
        faults = session.execute(
            select(col(VehicleFault.code), col(VehicleFault.alerted_at)).order_by(col(VehicleFault.code))
        ).all()
        assert faults == [("P0301", NOW), ("P0420", None)]
        pushes = session.execute(
            select(col(OutboxMessage.chat_id), col(OutboxMessage.text)).order_by(col(OutboxMessage.chat_id))
        ).all()
    assert [chat for chat, _ in pushes] == [PARTNER_TG, OWNER_TG]
    assert "P0301" in pushes[0][1] and "Owner C1" in pushes[0][1]
    assert "P0301" in pushes[1][1]
    assert vehicle(engine, VIN1).mileage_km == 21_000
    assert vehicle(engine, VIN2).mileage_km == 16_000

    again = telematics(engine, source)
    assert (again.imported, again.unchanged, again.rejected) == (0, 4, 5)
    assert (again.count("new_faults"), again.count("alerts")) == (0, 0)
    assert count(engine, select(func.count()).select_from(OdometerReading)) == 4
    assert count(engine, select(func.count()).select_from(OutboxMessage)) == 2


def test_a_late_reading_that_fits_between_its_neighbours_is_kept(engine: Engine, cars, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "t.csv",
        TELEMATICS_HEADER,
        [
            [VIN3, "1000", "2026-11-01T00:00:00Z", ""],
            [VIN3, "3000", "2026-11-21T00:00:00Z", ""],
            [VIN3, "2000", "2026-11-11T00:00:00Z", ""],  # late, fits
            [VIN3, "3500", "2026-11-12T00:00:00Z", ""],  # late, above the later 3,000
        ],
    )
    summary = telematics(engine, source)
    assert (summary.imported, summary.rejected) == (3, 1)
    assert "above the 3000 km recorded later" in rejects_of(tmp_path / "t.rejects.csv")[1][2]
    assert vehicle(engine, VIN3).mileage_km == 3_000


def test_a_repeated_fault_within_the_window_is_one_occurrence(engine: Engine, cars, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "f.csv",
        TELEMATICS_HEADER,
        [
            [VIN1, "1000", "2026-11-24T06:00:00Z", "P0301"],  # 46 h ago: recent enough to tell
            [VIN1, "1100", "2026-11-25T00:00:00Z", "P0301"],
            [VIN1, "1200", "2026-11-25T06:00:00Z", "P0301, U0100"],
        ],
    )
    summary = telematics(engine, source)
    assert (summary.count("new_faults"), summary.count("alerts")) == (2, 4)
    with Session(engine) as session:
        p0301 = session.execute(select(VehicleFault).where(col(VehicleFault.code) == "P0301")).scalar_one()
        assert p0301.last_seen_at == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def test_owner_reimport_keeps_newer_mileage_and_service(engine: Engine, cars, tmp_path: Path) -> None:
    telematics(engine, write_csv(tmp_path / "t.csv", TELEMATICS_HEADER, [[VIN2, "30000", "2026-11-20T00:00:00Z", ""]]))
    services(engine, write_csv(tmp_path / "s.csv", ["VIN", "Date", "Km"], [[VIN2, "2026-11-10", "29000"]]))
    owners = tmp_path / "owners.csv"
    owners.write_text(
        "车主编号,姓名,车架号,产品线,最近保养日期,最近保养里程,当前里程\n"
        f"C2,Owner C2,{VIN2},乘用车,2026-05-01,12000,15000\n",
        encoding="utf-8",
    )
    summary = import_owners(engine, owners)
    assert summary.rejected == 0
    car2 = vehicle(engine, VIN2)
    assert (car2.last_service_date, car2.last_service_km, car2.mileage_km) == (date(2026, 11, 10), 29_000, 30_000)


# --- the command line -------------------------------------------------------------------------


def test_cli_imports_services_and_telematics(cli_env: str, engine: Engine, cars, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from bot.cli.main import app as cli

    history = write_csv(
        tmp_path / "history.csv",
        SERVICE_HEADER,
        [
            [VIN1, "2025-07-02", "15000", "oil", ""],
            [VIN3, "2099-01-01", "1", "", ""],
        ],
    )
    result = CliRunner().invoke(cli, ["import", "services", str(history)])
    assert result.exit_code == 0, result.output
    assert "imported            1" in result.stdout and "history.rejects.csv" in result.stdout
    assert "ignored columns: 备注" in result.stdout

    readings = write_csv(
        tmp_path / "tbox.csv",
        TELEMATICS_HEADER,
        [
            [VIN1, "15500", "2026-11-25T08:00:00+08:00", "P0301"],
            ["LSVAB2BJ7MN999999", "1", "2026-11-25", ""],
        ],
    )
    result = CliRunner().invoke(cli, ["import", "telematics", str(readings), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("read", "imported", "rejected", "unknown_vins", "new_faults", "alerts")} == {
        "read": 2,
        "imported": 1,
        "rejected": 1,
        "unknown_vins": 1,
        "new_faults": 1,
        "alerts": 2,
    }

    missing = CliRunner().invoke(cli, ["import", "telematics", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "file not found" in missing.output
