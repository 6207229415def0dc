"""Import an owner export (CSV or XLSX) into owners and vehicles, safely re-runnable.

Rows stream from the file, are validated one by one (``rows.RowParser``) and written in
batches, one transaction per batch: a crash loses at most the batch in flight, and running the
import again finishes the job because the import is idempotent.

Identity: an owner is the row's owner id (``Owner.external_id``) or, for a row without one, the
owner of its VIN. A vehicle is its VIN. ``Owner.row_hash`` is a hash of the owner fields this
import writes (name, phone, product line, dealer, advisor, assigned partner, extra columns), so
an unchanged owner costs one indexed lookup and a string compare; vehicles are compared field
by field with the row fetched by the same VIN lookup that checks who owns the VIN.

An export never moves a car's last service back nor lowers its mileage (``_keep_newer``):
service visits, ``/mileage`` and telematics may know newer values than the dealer system did.

Within one file the first row for an owner id or a VIN wins: a later row that repeats it
exactly is counted unchanged, a later row that disagrees (different phone for the same owner
id, different mileage for the same VIN, the same VIN under another owner id) is rejected with
the reason. "Later row wins" cannot be idempotent when rows stream: on the second run the
earlier row would overwrite the later one's values, then the later row would write them back.

Writes use Core executemany with ids allocated up front (SQLite: ``MAX(id)`` under the write
lock taken by ``BEGIN IMMEDIATE``; PostgreSQL: the serial's sequence), so that vehicles can
point at owners inserted in the same statement batch without a round trip per row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from storage.clock import utcnow
from storage.db import pk, table_of
from storage.events import EventKind
from storage.importing.batches import ProgressCallback, Reject, stream_batches
from storage.importing.headers import ColumnMap, map_columns
from storage.importing.readers import open_source
from storage.importing.rejects import Problem, RejectWriter, check_target, default_rejects_path
from storage.importing.rows import OwnerRow, RowParser
from storage.importing.summary import ImportSummary
from storage.models import Dealer, Event, FunnelStage, Owner, Partner, Vehicle

OWNER = table_of(Owner)
VEHICLE = table_of(Vehicle)
DEALER = table_of(Dealer)
PARTNER = table_of(Partner)
EVENT = table_of(Event)

_OWNER_INSERT = (
    "id",
    "external_id",
    "name",
    "phone",
    "product_line",
    "dealer_code",
    "advisor_code",
    "partner_id",
    "stage",
    "attributes",
    "row_hash",
    "unreachable",
    "opted_out",
    "created_at",
    "updated_at",
)
_VEHICLE_INSERT = (
    "id",
    "owner_id",
    "vin",
    "plate",
    "model",
    "purchase_date",
    "last_service_date",
    "last_service_km",
    "mileage_km",
)
# The owner fields an import writes, in the order of an owner-values tuple.
OWNER_FIELDS = ("name", "phone", "product_line", "dealer_code", "advisor_code", "partner_id")
VEHICLE_FIELDS = (
    "plate",
    "model",
    "purchase_date",
    "last_service_date",
    "last_service_km",
    "mileage_km",
)
_HASH_VERSION = "v1"
_LOOKUP_CHUNK = 5000  # IN-list size, well under SQLite's and PostgreSQL's parameter limits
_PG_LOCK_KEY = 0x6175746F63697263  # "autocirc": one owner import writes at a time


def import_owners(
    engine: Engine,
    path: str | Path,
    *,
    rejects_path: str | Path | None = None,
    batch_size: int = 2000,
    timezone: str = "Asia/Shanghai",
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import ``path``; bad rows go to the rejects file, good rows are upserted.

    ``timezone`` names the calendar that decides "in the future" for dates (the dealer's day,
    from ``storage.clock.utcnow``). Raises ``ImportFileError`` only when the file itself cannot
    be imported: found before anything is written, except for a CSV whose quoting breaks
    down midway (the batches before it stay imported; re-running after the fix is safe).
    """
    started = time.perf_counter()
    batch_size = max(1, batch_size)
    source_path = Path(path)
    target = Path(rejects_path) if rejects_path is not None else default_rejects_path(source_path)
    today = utcnow().astimezone(ZoneInfo(timezone)).date()
    with closing(open_source(source_path)) as source:
        columns = map_columns(source.header)
        check_target(target, source_path)
        parser = RowParser(columns, today)
        rejects = RejectWriter(target, columns.header)
        try:
            with engine.connect() as conn:
                store = _OwnerStore(conn, columns, source_path.name)
                read = stream_batches(source, parser, rejects, store.write, batch_size, progress)
        finally:
            rejects.close()
    return ImportSummary(
        path=str(source_path),
        format=source.format,
        encoding=source.encoding,
        read=read,
        imported=store.imported,
        updated=store.updated,
        unchanged=store.unchanged,
        rejected=rejects.rows,
        owners_created=store.owners_created,
        unassigned=store.unassigned,
        unknown_advisor_codes=tuple(sorted(store.unknown_codes.items())),
        dealers_created=tuple(sorted(store.dealers_created)),
        extra_columns=tuple(name for _, name in columns.extras),
        rejects_path=str(target) if rejects.rows else None,
        seconds=time.perf_counter() - started,
    )


class _IdSet:
    """Which database ids this run has already handled: a sparse bitmap, a bit per id."""

    __slots__ = ("_pages",)
    _SHIFT = 15  # 32768 ids (4 KiB) per page

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}

    def add(self, value: int) -> None:
        page = self._pages.get(value >> self._SHIFT)
        if page is None:
            page = self._pages[value >> self._SHIFT] = bytearray(1 << (self._SHIFT - 3))
        page[(value >> 3) & 0xFFF] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        page = self._pages.get(value >> self._SHIFT)
        return page is not None and bool(page[(value >> 3) & 0xFFF] & (1 << (value & 7)))


class _Owner:
    __slots__ = ("ext", "full", "hash", "id", "new", "seen", "values")

    def __init__(self, id_: int | None, ext: str | None, row_hash: str | None, seen: bool) -> None:
        self.id = id_
        self.ext = ext
        self.hash = row_hash
        self.values: tuple[Any, ...] | None = None  # what this batch writes, if anything
        self.full: dict[str, Any] | None = None  # the stored fields, loaded when needed
        self.new = False
        self.seen = seen


class _Vehicle:
    __slots__ = ("id", "new", "owner", "seen", "values", "vin")

    def __init__(self, id_: int | None, vin: str, owner: _Owner, values: tuple[Any, ...], seen: bool) -> None:
        self.id = id_
        self.vin = vin
        self.owner = owner
        self.values = values
        self.new = False
        self.seen = seen


class _Batch:
    """What one batch will write, decided before anything is written."""

    def __init__(self) -> None:
        self.new_owners: list[_Owner] = []
        self.new_vehicles: list[_Vehicle] = []
        self.owner_updates: list[_Owner] = []
        self.hash_updates: list[_Owner] = []
        self.vehicle_updates: list[_Vehicle] = []
        self.events: list[dict[str, Any]] = []
        self.new_dealers: set[str] = set()
        self.rejects: list[Reject] = []
        self.touched_owners: list[_Owner] = []
        self.touched_vehicles: list[_Vehicle] = []


class _OwnerStore:
    """The database side of one import run: lookups, decisions and writes per batch."""

    def __init__(self, conn: Connection, columns: ColumnMap, source_name: str) -> None:
        self.conn = conn
        self.source = source_name
        dialect = conn.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            raise NotImplementedError(f"owner import supports SQLite and PostgreSQL, not {dialect.name}")
        self._sqlite = dialect.name == "sqlite"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._insert_owner_sql = _insert_sql(dialect, "owner", _OWNER_INSERT, mark)
        self._insert_vehicle_sql = _insert_sql(dialect, "vehicle", _VEHICLE_INSERT, mark)
        self._stamp = _processor(OWNER.c.created_at, dialect)
        self._json = _processor(OWNER.c.attributes, dialect)
        self._empty_json = self._json({})
        self._date = _processor(VEHICLE.c.purchase_date, dialect)
        self._dates: dict[Any, Any] = {}
        self._layout = _Layout(columns)
        self._vin_column = columns.column_name("vin")
        self._owner_column = columns.column_name("owner_id")
        self._columns = columns
        self.partners = {code.upper(): pid for pid, code in conn.execute(select(PARTNER.c.id, PARTNER.c.advisor_code))}
        self.dealers = set(conn.execute(select(DEALER.c.code)).scalars())
        conn.commit()
        self.seen_owners = _IdSet()
        self.seen_vehicles = _IdSet()
        self.created_owners = _IdSet()
        self.imported = self.updated = self.unchanged = 0
        self.owners_created = self.unassigned = 0
        self.unknown_codes: Counter[str] = Counter()
        self.dealers_created: set[str] = set()

    # -- one batch ---------------------------------------------------------------------------

    def write(self, rows: Sequence[OwnerRow]) -> list[Reject]:
        """Decide and write one batch in one transaction; return the rows it rejected."""
        conn = self.conn
        now = utcnow()
        self._lock()
        try:
            batch = self._decide(rows, now)
            self._apply(batch, now)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        for owner in batch.touched_owners:
            self.seen_owners.add(pk(owner))
        for owner in batch.new_owners:
            self.created_owners.add(pk(owner))
        for vehicle in batch.touched_vehicles:
            self.seen_vehicles.add(pk(vehicle))
        self.dealers |= batch.new_dealers
        self.dealers_created |= batch.new_dealers
        return batch.rejects

    def _lock(self) -> None:
        """Take the write lock first, so ids read from MAX(id) stay ours (SQLite) and two
        imports do not interleave their batches (PostgreSQL)."""
        if self._sqlite:
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})

    def _decide(self, rows: Sequence[OwnerRow], now: Any) -> _Batch:
        batch = _Batch()
        partners = self.partners
        owner_values: list[tuple[Any, ...]] = []
        hashes: list[str] = []
        for row in rows:
            values = (
                row.name,
                row.phone,
                row.product_line,
                row.dealer_code,
                row.advisor_code,
                partners.get(row.advisor_code) if row.advisor_code else None,
                row.attributes,
            )
            owner_values.append(values)
            hashes.append(_owner_hash(values, self._layout.signature))
        by_ext, by_vin = self._lookup(rows, hashes)

        for row, values, row_hash in zip(rows, owner_values, hashes, strict=True):
            vin = row.vin
            vehicle = by_vin.get(vin)
            ext = row.external_id
            adopt = False
            if ext is not None:
                owner = by_ext.get(ext)
                if owner is None and vehicle is not None and vehicle.owner.ext is None:
                    owner, adopt = vehicle.owner, True  # a VIN-only owner gains its owner id
            else:
                owner = vehicle.owner if vehicle is not None else None

            problems: list[Problem] = []
            owner_changes: dict[str, list[Any]] = {}
            hash_only = False
            if vehicle is not None and vehicle.owner is not owner:
                problems.append((self._vin_column, _taken(vin, vehicle.owner)))
            elif owner is not None and owner.hash != row_hash:
                current = self._current(owner)
                owner_changes = self._layout.owner_changes(current, values)
                if owner.seen and owner_changes:
                    problems.append(
                        (
                            self._owner_column if ext else self._vin_column,
                            f"{'owner id ' + ext if ext else 'the owner of VIN ' + vin} appears "
                            f"earlier in this file with different {self._names(owner_changes)}",
                        )
                    )
                hash_only = not owner_changes
            vehicle_values = tuple(row[10:16])
            if vehicle is not None:
                vehicle_values = _keep_newer(vehicle.values, vehicle_values)
            vehicle_changes: dict[str, list[Any]] = {}
            if not problems and vehicle is not None and vehicle.values != vehicle_values:
                vehicle_changes = self._layout.vehicle_changes(vehicle.values, vehicle_values)
                if vehicle.seen and vehicle_changes:
                    problems.append(
                        (
                            self._vin_column,
                            f"VIN {vin} appears earlier in this file with different {self._names(vehicle_changes)}",
                        )
                    )
            if problems:
                batch.rejects.append((row.line, row.values, problems))
                continue

            # The row is accepted: record what it changes.
            if adopt:
                owner_changes["external_id"] = [None, ext]
            if owner is None:
                owner = _Owner(None, ext, row_hash, seen=True)
                owner.new = True
                owner.values = values
                batch.new_owners.append(owner)
                if ext is not None:
                    by_ext[ext] = owner
            else:
                if owner_changes:
                    if owner.values is None:
                        batch.owner_updates.append(owner)
                    owner.values = self._layout.merge_owner(self._current(owner), values)
                    if adopt and ext is not None:  # adopt is only set when the row names an ext
                        owner.ext = ext
                        by_ext[ext] = owner
                elif hash_only and not owner.seen:
                    batch.hash_updates.append(owner)
                owner.hash = row_hash
                owner.seen = True
            batch.touched_owners.append(owner)

            if vehicle is None:
                vehicle = _Vehicle(None, vin, owner, vehicle_values, seen=True)
                vehicle.new = True
                batch.new_vehicles.append(vehicle)
                by_vin[vin] = vehicle
                self.imported += 1
            else:
                if vehicle_changes:
                    vehicle.values = self._layout.merge_vehicle(vehicle.values, vehicle_values)
                    batch.vehicle_updates.append(vehicle)
                vehicle.seen = True
                if owner_changes or vehicle_changes:
                    self.updated += 1
                else:
                    self.unchanged += 1
            batch.touched_vehicles.append(vehicle)

            existed_before = not owner.new and pk(owner) not in self.created_owners
            if existed_before and (owner_changes or vehicle_changes or vehicle.new):
                changes = {**owner_changes, **vehicle_changes}
                if vehicle.new:
                    changes["vin"] = [None, vin]
                batch.events.append(
                    {
                        "owner_id": owner.id,
                        "kind": EventKind.owner_updated.value,
                        "at": now,
                        "data": {"changes": changes, "vin": vin, "source": self.source, "line": row.line},
                    }
                )
            if self._layout.owner[5] and values[5] is None:
                self.unassigned += 1
                if row.advisor_code:
                    self.unknown_codes[row.advisor_code] += 1
            if row.dealer_code and row.dealer_code not in self.dealers:
                batch.new_dealers.add(row.dealer_code)
        return batch

    def _lookup(self, rows: Sequence[OwnerRow], hashes: list[str]) -> tuple[dict[str, _Owner], dict[str, _Vehicle]]:
        """The batch's owners (by owner id) and vehicles (by VIN) already in the database,
        with the stored fields of every owner a row would change."""
        by_id: dict[int, _Owner] = {}
        by_ext: dict[str, _Owner] = {}
        ext_ids = {row.external_id for row in rows if row.external_id is not None}
        query = select(OWNER.c.id, OWNER.c.external_id, OWNER.c.row_hash)
        for oid, ext, row_hash in self._in(query, OWNER.c.external_id, ext_ids):
            by_id[oid] = by_ext[ext] = _Owner(oid, ext, row_hash, oid in self.seen_owners)
        by_vin: dict[str, _Vehicle] = {}
        query = select(
            VEHICLE.c.id,
            VEHICLE.c.vin,
            VEHICLE.c.owner_id,
            *(VEHICLE.c[name] for name in VEHICLE_FIELDS),
            OWNER.c.external_id,
            OWNER.c.row_hash,
        ).join(OWNER, OWNER.c.id == VEHICLE.c.owner_id)
        for record in self._in(query, VEHICLE.c.vin, {row.vin for row in rows}):
            vid, vin, oid = record[0], record[1], record[2]
            owner = by_id.get(oid)
            if owner is None:
                owner = by_id[oid] = _Owner(oid, record[-2], record[-1], oid in self.seen_owners)
                if owner.ext is not None:
                    by_ext[owner.ext] = owner
            by_vin[vin] = _Vehicle(vid, vin, owner, tuple(record[3:9]), vid in self.seen_vehicles)
        if by_id:
            wanted: set[int] = set()
            for row, row_hash in zip(rows, hashes, strict=True):
                candidates = (
                    by_ext.get(row.external_id) if row.external_id else None,
                    by_vin[row.vin].owner if row.vin in by_vin else None,
                )
                for owner in candidates:
                    if owner is not None and owner.hash != row_hash:
                        wanted.add(pk(owner))
            self._load_fields(by_id, wanted)
        return by_ext, by_vin

    def _load_fields(self, by_id: dict[int, _Owner], ids: Iterable[int]) -> None:
        query = select(OWNER.c.id, *(OWNER.c[name] for name in OWNER_FIELDS), OWNER.c.attributes)
        for record in self._in(query, OWNER.c.id, ids):
            fields = dict(zip(OWNER_FIELDS, record[1:7], strict=True))
            fields["attributes"] = record[7] or {}
            by_id[record[0]].full = fields

    def _current(self, owner: _Owner) -> dict[str, Any]:
        """The owner's fields as they stand in this run: as this batch writes them, else as
        stored (prefetched by ``_lookup`` for every owner whose hash differs)."""
        if owner.values is not None:
            return _as_fields(owner.values)
        if owner.full is None:
            self._load_fields({pk(owner): owner}, [pk(owner)])
        assert owner.full is not None  # _load_fields fills it
        return owner.full

    def _in(self, query: Any, column: Any, keys: Iterable[Any]) -> Iterable[Any]:
        """``query WHERE column IN keys``, in chunks; one cached statement, keys as a list."""
        statement = query.where(column.in_(bindparam("keys", expanding=True)))
        keys = list(keys)
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            yield from self.conn.execute(statement, {"keys": keys[start : start + _LOOKUP_CHUNK]})

    def _names(self, changes: dict[str, Any]) -> str:
        names = []
        for key in changes:
            if key == "partner_id":
                continue
            if key.startswith("attributes."):
                names.append(key.removeprefix("attributes."))
            else:
                names.append(self._columns.column_name(key))
        return ", ".join(names)

    # -- writing -----------------------------------------------------------------------------

    def _apply(self, batch: _Batch, now: Any) -> None:
        conn = self.conn
        stamp = self._stamp(now)
        if batch.new_dealers:
            insert_dealer = _insert_ignoring_duplicates(conn.dialect.name)
            conn.execute(
                insert_dealer,
                [{"code": code, "name": "", "created_at": now} for code in sorted(batch.new_dealers)],
            )
        if batch.new_owners:
            ids = self._allocate("owner", len(batch.new_owners))
            params = []
            json_of, empty = self._json, self._empty_json
            imported = FunnelStage.imported.value
            for owner, oid in zip(batch.new_owners, ids, strict=True):
                owner.id = oid
                assert owner.values is not None  # a new owner carries its row's values
                name, phone, line, dealer, advisor, partner, attributes = owner.values
                params.append(
                    (
                        oid,
                        owner.ext,
                        name,
                        phone,
                        line,
                        dealer,
                        advisor,
                        partner,
                        imported,
                        json_of(attributes) if attributes else empty,
                        owner.hash,
                        False,
                        False,
                        stamp,
                        stamp,
                    )
                )
            conn.exec_driver_sql(self._insert_owner_sql, params)
            self.owners_created += len(params)
        if batch.new_vehicles:
            ids = self._allocate("vehicle", len(batch.new_vehicles))
            day = self._day
            vehicle_params = []
            for vehicle, vid in zip(batch.new_vehicles, ids, strict=True):
                vehicle.id = vid
                plate, model, bought, serviced, serviced_km, km = vehicle.values
                vehicle_params.append(
                    (vid, pk(vehicle.owner), vehicle.vin, plate, model, day(bought), day(serviced), serviced_km, km)
                )
            conn.exec_driver_sql(self._insert_vehicle_sql, vehicle_params)
        if batch.owner_updates:
            conn.execute(_UPDATE_OWNER, [_owner_update(o, now) for o in batch.owner_updates])
        if batch.hash_updates:
            conn.execute(_UPDATE_HASH, [{"b_id": o.id, "b_row_hash": o.hash} for o in batch.hash_updates])
        if batch.vehicle_updates:
            conn.execute(_UPDATE_VEHICLE, [_vehicle_update(v) for v in batch.vehicle_updates])
        if batch.events:
            conn.execute(insert(EVENT), batch.events)

    def _day(self, value: Any) -> Any:
        """A date as this database's driver takes it (cached: a file has few distinct dates)."""
        if value is None:
            return None
        done = self._dates.get(value)
        if done is None:
            done = self._dates[value] = self._date(value)
        return done

    def _allocate(self, table: str, count: int) -> Sequence[int]:
        """``count`` fresh ids for ``table``; the batch's write lock is held."""
        if self._sqlite:
            query = f"SELECT COALESCE(MAX(id), 0) FROM {table}"
            last = self.conn.exec_driver_sql(query).scalar_one()
            return range(last + 1, last + 1 + count)
        return (
            self.conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
                {"table": table, "n": count},
            )
            .scalars()
            .all()
        )


_OWNER_UPDATE = (*OWNER_FIELDS, "attributes", "external_id", "row_hash", "updated_at")
_UPDATE_OWNER = (
    update(OWNER)
    .where(OWNER.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _OWNER_UPDATE})
)
_UPDATE_HASH = update(OWNER).where(OWNER.c.id == bindparam("b_id")).values(row_hash=bindparam("b_row_hash"))
_UPDATE_VEHICLE = (
    update(VEHICLE)
    .where(VEHICLE.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in VEHICLE_FIELDS})
)


def _owner_update(owner: _Owner, now: Any) -> dict[str, Any]:
    assert owner.values is not None  # only owners with changes are updated
    values = (*owner.values, owner.ext, owner.hash, now)
    return {"b_id": owner.id, **{f"b_{name}": v for name, v in zip(_OWNER_UPDATE, values, strict=True)}}


def _vehicle_update(vehicle: _Vehicle) -> dict[str, Any]:
    return {"b_id": vehicle.id, **{f"b_{n}": v for n, v in zip(VEHICLE_FIELDS, vehicle.values, strict=True)}}


def _insert_ignoring_duplicates(dialect_name: str) -> Any:
    if dialect_name == "sqlite":
        return sqlite.insert(DEALER).on_conflict_do_nothing(index_elements=["code"])
    return postgresql.insert(DEALER).on_conflict_do_nothing(index_elements=["code"])


def _insert_sql(dialect: Any, table: str, columns: tuple[str, ...], mark: str) -> str:
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {quote(table)} ({names}) VALUES ({', '.join([mark] * len(columns))})"


def _processor(column: Any, dialect: Any) -> Callable[[Any], Any]:
    """The value conversion SQLAlchemy would apply for this column on this database."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


def _owner_hash(values: tuple[Any, ...], layout: str) -> str:
    name, phone, line, dealer, advisor, partner, attributes = values
    extra = json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else ""
    key = "\x1f".join(
        (_HASH_VERSION, layout, name, phone or "", line, dealer or "", advisor or "", str(partner or ""), extra)
    )
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def _as_fields(values: tuple[Any, ...]) -> dict[str, Any]:
    fields = dict(zip(OWNER_FIELDS, values, strict=False))
    fields["attributes"] = values[6]
    return fields


class _Layout:
    """Which fields this file carries. A column the file does not have says nothing: the
    stored value stays (an export without a phone column does not erase phones). A column it
    has with an empty cell does clear the value. Extra columns merge into the attributes the
    same way, column by column."""

    def __init__(self, columns: ColumnMap) -> None:
        has = columns.fields.__contains__
        self.owner = (*tuple(has(name) for name in OWNER_FIELDS[:5]), has("advisor_code"))
        self.vehicle = tuple(has(name) for name in VEHICLE_FIELDS)
        self.extras = tuple(name for _, name in columns.extras)
        # Part of the row hash: a file with other columns never looks "unchanged" by hash
        # alone; its rows are compared field by field (and the hash is rewritten).
        self.signature = "".join("1" if p else "0" for p in self.owner) + "|" + "|".join(sorted(self.extras))

    def owner_changes(self, stored: dict[str, Any], values: tuple[Any, ...]) -> dict[str, list[Any]]:
        changes: dict[str, list[Any]] = {}
        for name, new, present in zip(OWNER_FIELDS, values, self.owner, strict=False):
            if present and stored[name] != new:
                changes[name] = [stored[name], new]
        old_attrs, new_attrs = stored["attributes"] or {}, values[6]
        for key in self.extras:
            if old_attrs.get(key) != new_attrs.get(key):
                changes[f"attributes.{key}"] = [old_attrs.get(key), new_attrs.get(key)]
        return changes

    def merge_owner(self, stored: dict[str, Any], values: tuple[Any, ...]) -> tuple[Any, ...]:
        merged = [
            new if present else stored[name]
            for name, new, present in zip(OWNER_FIELDS, values, self.owner, strict=False)
        ]
        attributes = {k: v for k, v in (stored["attributes"] or {}).items() if k not in self.extras}
        attributes.update(values[6])
        return (*merged, attributes)

    def vehicle_changes(self, stored: tuple[Any, ...], values: tuple[Any, ...]) -> dict[str, list[Any]]:
        return {
            name: [_plain(old), _plain(new)]
            for name, old, new, present in zip(VEHICLE_FIELDS, stored, values, self.vehicle, strict=True)
            if present and old != new
        }

    def merge_vehicle(self, stored: tuple[Any, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(new if present else old for old, new, present in zip(stored, values, self.vehicle, strict=True))


def _keep_newer(stored: tuple[Any, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The file's vehicle values, except that an export never moves the last service back nor
    lowers (or blanks) the mileage: service visits, ``/mileage`` and telematics may have
    recorded newer values since the dealer system exported (``VEHICLE_FIELDS`` order)."""
    plate, model, bought, served_on, served_km, km = values
    _, _, _, stored_on, stored_km, stored_mileage = stored
    if stored_on is not None and (served_on is None or served_on < stored_on):
        served_on, served_km = stored_on, stored_km
    if stored_mileage is not None and (km is None or km < stored_mileage):
        km = stored_mileage
    return (plate, model, bought, served_on, served_km, km)


def _plain(value: Any) -> Any:
    """Event data is JSON: dates as ISO text."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def _taken(vin: str, owner: _Owner) -> str:
    if owner.ext is not None:
        return f"VIN {vin} already belongs to owner id {owner.ext}"
    return f"VIN {vin} already belongs to another owner (one imported without an owner id)"
