"""Owner import rules without a database: cell validators, header matching, one row's checks."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from storage.importing import fields
from storage.importing.errors import ImportFileError
from storage.importing.fields import FieldError
from storage.importing.headers import field_for, map_columns
from storage.importing.rows import RowParser

# --- blanks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "-", "--", "/", "无", "NULL", "N/A", "#N/A"])
def test_empty_cells_and_placeholders_are_no_value(value: object) -> None:
    assert fields.text(value) is None
    assert fields.vin(value) is None
    assert fields.phone(value) is None
    assert fields.day(value) is None
    assert fields.kilometres(value) is None


# --- VIN ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LFV2A21K8E3123456", "LFV2A21K8E3123456"),
        ("  lfv2a21k8e3123456 ", "LFV2A21K8E3123456"),
        ("LFV2A 21K8E 312 3456", "LFV2A21K8E3123456"),
        ("ＬＦＶ２Ａ２１Ｋ８Ｅ３１２３４５６", "LFV2A21K8E3123456"),  # full-width
    ],
)
def test_vin_is_normalised(raw: str, expected: str) -> None:
    assert fields.vin(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("LSVAU2I8OQ2183045", "I, O, Q"),
        ("LFV2A21K8E312345O", "contains O"),
        ("LFV2A21K8E312345", "16 characters, needs 17"),
        ("LFV2A21K8E31234567", "18 characters"),
        ("LFV2A21K8E31234#6", "only letters and digits"),
    ],
)
def test_bad_vins_say_why(raw: str, reason: str) -> None:
    with pytest.raises(FieldError, match=reason):
        fields.vin(raw)


# --- phone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "+86 138 1234 5678",
        "+8613812345678",
        "0086-138-1234-5678",
        "0086 13812345678",
        "8613812345678",
        "138-1234-5678",
        "(138) 1234 5678",
        "１３８１２３４５６７８",
        "13812345678.0",
        13812345678,
        13812345678.0,
    ],
)
def test_mainland_mobiles_become_plus86(raw: object) -> None:
    assert fields.phone(raw) == "+8613812345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+852 9123 4567", "+85291234567"),
        ("00852 9123 4567", "+85291234567"),
        ("+1 415-555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("021-6438 1234", "+862164381234"),  # a Shanghai landline
    ],
)
def test_other_numbers_must_be_valid_e164(raw: str, expected: str) -> None:
    assert fields.phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "+86 123", "1381234567", "+1 555 0000", "phone", "+999 1234567"])
def test_invalid_phones_are_rejected(raw: str) -> None:
    with pytest.raises(FieldError):
        fields.phone(raw)


# --- plates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("京A12345", "京A12345"),
        ("粤B·D12345", "粤BD12345"),  # new-energy, 8 characters, with the usual dot
        ("沪AD12345", "沪AD12345"),
        ("沪A 12345", "沪A12345"),
        ("京a-f1234", "京AF1234"),
        ("粤B12345D", "粤B12345D"),  # large new-energy vehicle: the letter at the end
        ("苏E1234挂", "苏E1234挂"),  # trailer
    ],
)
def test_plates_are_normalised(raw: str, expected: str) -> None:
    assert fields.plate(raw) == expected


@pytest.mark.parametrize("raw", ["A12345", "京12345", "京A123", "京A1234567", "XX A12345", "京I12345"])
def test_bad_plates_are_rejected(raw: str) -> None:
    with pytest.raises(FieldError, match="licence plate"):
        fields.plate(raw)


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2023-01-05", date(2023, 1, 5)),
        ("2023/1/5", date(2023, 1, 5)),
        ("2023.1.5", date(2023, 1, 5)),
        ("2023年1月5日", date(2023, 1, 5)),
        ("2023年01月05日", date(2023, 1, 5)),
        ("20230105", date(2023, 1, 5)),
        ("2023-01-05 14:30:00", date(2023, 1, 5)),
        ("2023/1/5 9:05", date(2023, 1, 5)),
        ("2023-01-05T14:30", date(2023, 1, 5)),
        ("44927", date(2023, 1, 1)),  # Excel serial as text
        ("44927.75", date(2023, 1, 1)),
        (44927, date(2023, 1, 1)),  # Excel serial as a number cell
        (44927.5, date(2023, 1, 1)),
        (datetime(2023, 1, 5, 10, 30), date(2023, 1, 5)),  # XLSX date cells
        (date(2023, 1, 5), date(2023, 1, 5)),
    ],
)
def test_dates_in_every_export_style(raw: object, expected: date) -> None:
    assert fields.day(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2023-13-45", "not a real date"),
        ("2023-02-30", "not a real date"),
        ("yesterday", "not a date"),
        ("05/01/2023", "not a date"),
        ("0", "outside Excel's date range"),
        ("1800-01-01", "before 1900"),
    ],
)
def test_bad_dates_are_rejected(raw: str, reason: str) -> None:
    with pytest.raises(FieldError, match=reason):
        fields.day(raw)


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345", 12345),
        ("12,345", 12345),
        ("1,234,567", 1234567),
        ("12，345", 12345),  # full-width comma
        ("１２３４５", 12345),
        ("12 345", 12345),
        ("12345.0", 12345),
        ("12345.6", 12346),
        ("12345 km", 12345),
        ("12345公里", 12345),
        (12345, 12345),
        (12345.0, 12345),
        ("0", 0),
    ],
)
def test_kilometres(raw: object, expected: int) -> None:
    assert fields.kilometres(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("-5", "negative"), ("abc", "not a number"), ("12a45", "not a number"), ("99999999", "implausibly large")],
)
def test_bad_kilometres(raw: str, reason: str) -> None:
    with pytest.raises(FieldError, match=reason):
        fields.kilometres(raw)


# --- choices and codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("乘用车", "passenger"),
        ("商用车", "commercial"),
        ("passenger", "passenger"),
        ("Commercial", "commercial"),
        (" PASSENGER ", "passenger"),
        ("ＰＶ", "passenger"),
    ],
)
def test_product_line(raw: str, expected: str) -> None:
    assert fields.product_line(raw) == expected


def test_unknown_product_line_names_the_choices() -> None:
    with pytest.raises(FieldError, match="乘用车/passenger or 商用车/commercial, got 卡车"):
        fields.product_line("卡车")


def test_codes_are_upper_case_without_spaces() -> None:
    assert fields.code(" a101 ") == "A101"
    assert fields.code("D 001") == "D001"
    with pytest.raises(FieldError, match="longer than 32"):
        fields.code("A" * 33)


def test_owner_id_from_a_number_cell_stays_whole() -> None:
    assert fields.owner_id(100001) == "100001"
    assert fields.owner_id(100001.0) == "100001"
    assert fields.owner_id(" C-0001 ") == "C-0001"
    with pytest.raises(FieldError):
        fields.owner_id("x" * 65)


# --- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("车主编号", "owner_id"),
        ("\ufeff车主编号", "owner_id"),  # a BOM glued to the first header
        ("Owner ID", "owner_id"),
        ("owner_id", "owner_id"),
        ("OWNER-ID", "owner_id"),
        ("姓名", "name"),
        ("  Name ", "name"),
        ("手机号", "phone"),
        ("Mobile", "phone"),
        ("VIN", "vin"),
        ("ＶＩＮ", "vin"),  # full-width
        ("车架号", "vin"),
        ("VIN(车架号)", "vin"),
        ("车牌号", "plate"),
        ("车型", "model"),
        ("产品线", "product_line"),
        ("Product Line", "product_line"),
        ("product_line", "product_line"),
        ("购车日期", "purchase_date"),
        ("购车日期(YYYY-MM-DD)", "purchase_date"),
        ("Purchase date", "purchase_date"),
        ("经销商代码", "dealer_code"),
        ("Dealer Code", "dealer_code"),
        ("顾问编号", "advisor_code"),
        ("advisor_code", "advisor_code"),
        ("最近保养日期", "last_service_date"),
        ("Last service date", "last_service_date"),
        ("最近保养里程", "last_service_km"),
        ("最近保养里程（公里）", "last_service_km"),
        ("Last service (km)", "last_service_km"),
        ("LAST_SERVICE_KM", "last_service_km"),
        ("当前里程", "mileage_km"),
        ("当前里程(km)", "mileage_km"),
        ("Mileage (km)", "mileage_km"),
        ("mileage_km", "mileage_km"),
        ("姓名*", "name"),
    ],
)
def test_headers_match_forgivingly(header: str, field: str) -> None:
    assert field_for(header) == field


@pytest.mark.parametrize("header", ["备注", "会员等级", "Member tier", "", None])
def test_unknown_headers_match_no_field(header: object) -> None:
    assert field_for(header) is None


def test_unknown_columns_are_kept_as_attributes() -> None:
    columns = map_columns(["VIN", "姓名", "产品线", "备注", "会员等级", ""])
    assert [name for _, name in columns.extras] == ["备注", "会员等级", "column 6"]


def test_missing_required_columns_are_named_in_one_line() -> None:
    with pytest.raises(ImportFileError) as caught:
        map_columns(["车主编号", "手机号", "车型"])
    message = str(caught.value)
    assert "\n" not in message
    assert "missing required columns: VIN/车架号, name/姓名, product line/产品线" in message


def test_two_columns_for_one_field_are_refused() -> None:
    with pytest.raises(ImportFileError, match="'VIN' and '车架号' both mean VIN"):
        map_columns(["VIN", "车架号", "姓名", "产品线"])


def test_a_rejects_file_can_be_read_back() -> None:
    columns = map_columns(["line", "column", "reason", "VIN", "姓名", "产品线"])
    assert columns.ignored == {0, 1, 2}
    assert columns.extras == ()


# --- one row --------------------------------------------------------------------------------

HEADER = ["车主编号", "姓名", "手机号", "车架号", "车牌号", "产品线", "购车日期", "最近保养里程", "当前里程", "备注"]
TODAY = date(2026, 11, 26)


def _parse(values: list[object]):
    return RowParser(map_columns(HEADER), TODAY).parse(5, values)


def test_a_good_row_is_normalised() -> None:
    row, problems = _parse(
        [
            "100001",
            "张三",
            "+86 138 1234 5678",
            "lfv2a21k8e3123456",
            "粤B·D12345",
            "乘用车",
            "2023年1月5日",
            "12,000",
            "15000",
            "老客户",
        ]
    )
    assert problems == []
    assert row is not None
    assert (row.line, row.external_id, row.name, row.phone) == (5, "100001", "张三", "+8613812345678")
    assert (row.vin, row.plate, row.product_line) == ("LFV2A21K8E3123456", "粤BD12345", "passenger")
    assert (row.purchase_date, row.last_service_km, row.mileage_km) == (date(2023, 1, 5), 12000, 15000)
    assert row.attributes == {"备注": "老客户"}


def test_every_problem_of_a_row_is_listed_in_column_order() -> None:
    row, problems = _parse(
        ["100001", "", "12345", "LFV2A21K8E312345", "京A12345", "卡车", "2027-01-01", "20,000", "100", ""]
    )
    assert row is None
    assert [column for column, _ in problems] == ["姓名", "手机号", "车架号", "产品线", "购车日期", "当前里程"]
    reasons = dict(problems)
    assert reasons["姓名"] == "required value is missing"
    assert "in the future" in reasons["购车日期"]
    assert "below the last service's 20000 km" in reasons["当前里程"]


def test_today_is_not_the_future() -> None:
    row, problems = _parse(["1", "张三", "", "LFV2A21K8E3123456", "", "乘用车", "2026-11-26", "", "", ""])
    assert problems == [] and row is not None


def test_short_rows_are_padded_and_long_rows_refused() -> None:
    row, problems = _parse(["1", "张三", "", "LFV2A21K8E3123456", "", "乘用车"])
    assert problems == [] and row is not None and row.mileage_km is None
    _, problems = _parse(["1", "张三", "", "LFV2A21K8E3123456", "", "乘用车", "", "", "", "", "extra"])
    assert problems == [("", "row has 11 values but the header has 10 columns")]
