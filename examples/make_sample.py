"""Write the sample owner exports: ``owners.csv`` (GBK, Chinese headers) and ``owners.xlsx``.

    python examples/make_sample.py            # rewrites both files beside this script

Deterministic (seeded; the XLSX gets fixed timestamps), so running it again changes nothing.
The people, phones and VINs are made up. Dealers and advisors are the ones in
``partners.csv``: D001 上海浦东店 (A101, A102), D002 北京朝阳店 (A201, A202), D003 广州天河店
(A301, A302); a few rows carry the unknown advisor code A999. ``BAD_ROWS`` are put in on
purpose; README.md lists their lines and why each is rejected.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261126
AS_OF = date(2026, 11, 26)  # the sample's "today": nothing in it is later

CSV_HEADER = [
    "车主编号",
    "姓名",
    "手机号",
    "车架号",
    "车牌号",
    "车型",
    "产品线",
    "购车日期",
    "经销商代码",
    "顾问编号",
    "最近保养日期",
    "最近保养里程",
    "当前里程",
    "会员等级",
    "备注",
]
XLSX_HEADER = [
    "Owner ID",
    "Name",
    "Phone",
    "VIN",
    "Plate",
    "Model",
    "Product line",
    "Purchase date",
    "Dealer code",
    "Advisor code",
    "Last service date",
    "Last service (km)",
    "Mileage (km)",
]

DEALERS = {"D001": ("沪", ["A101", "A102"]), "D002": ("京", ["A201", "A202"]), "D003": ("粤", ["A301", "A302"])}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈任姚卢傅钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江阎薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严覃武洪"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "霞",
    "平",
    "刚",
    "桂英",
    "建华",
    "志强",
    "晓东",
    "海燕",
    "文博",
    "子涵",
    "思远",
    "雨桐",
    "浩然",
    "欣怡",
    "宇航",
    "佳琪",
    "俊杰",
    "秀兰",
    "国强",
    "丹",
    "鹏",
    "辉",
    "婷",
]
# (model, product line, new-energy plate, WMI)
PASSENGER = [
    ("星途 LX", "乘用车", False, "LVV"),
    ("轩逸", "乘用车", False, "LGB"),
    ("宋PLUS DM-i", "乘用车", True, "LGX"),
    ("汉EV", "乘用车", True, "LGX"),
    ("朗逸", "乘用车", False, "LSV"),
    ("哈弗H6", "乘用车", False, "LGW"),
    ("秦PLUS EV", "乘用车", True, "LGX"),
]
COMMERCIAL = [
    ("解放 J6P", "商用车", False, "LFW"),
    ("福田 欧马可", "商用车", False, "LVB"),
    ("江铃 顺达", "商用车", False, "LEF"),
]
TIERS = ["普通", "普通", "普通", "银卡", "银卡", "金卡"]
NOTES = ["", "", "", "", "", "", "已加微信", "偏好周末保养", "车队客户", "老客户推荐"]

_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=False)),
    **dict(zip("JKLMN", range(1, 6), strict=False)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=False)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def make_vin(rng: random.Random, wmi: str, year: int) -> str:
    """A VIN with a correct check digit (position 9) and the model-year code (position 10)."""
    year_code = "ABCDEFGHJKLMNPRSTVWXY123456789"[(year - 2010) % 30]
    body = wmi + "".join(rng.choices(_VIN_CHARS, k=5)) + "0" + year_code + rng.choice("ABCDEFGH")
    body += f"{rng.randrange(10**6):06d}"
    total = sum(_VIN_VALUES[ch] * w for ch, w in zip(body, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return body[:8] + check + body[9:]


def make_plate(rng: random.Random, province: str, new_energy: bool) -> str:
    letter = {"沪": "A", "京": "A", "粤": "A"}[province] if rng.random() < 0.6 else rng.choice("BCDEFG")
    if new_energy:
        number = rng.choice("DF") + "".join(rng.choices(_PLATE_CHARS, k=1)) + f"{rng.randrange(10**4):04d}"
        separator = rng.choice(["", "", "·"])
        return f"{province}{letter}{separator}{number}"
    return province + letter + "".join(rng.choices(_PLATE_CHARS, k=2)) + f"{rng.randrange(1000):03d}"


def make_phone(rng: random.Random) -> str:
    digits = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    style = rng.random()
    if style < 0.8:
        return digits
    if style < 0.9:
        return f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
    return f"0086-{digits}"


def show_date(rng: random.Random, day: date) -> str:
    style = rng.random()
    if style < 0.7:
        return day.isoformat()
    if style < 0.85:
        return f"{day.year}/{day.month}/{day.day}"
    return f"{day.year}年{day.month}月{day.day}日"


def show_km(rng: random.Random, km: int) -> str:
    return f"{km:,}" if rng.random() < 0.3 else str(km)


def make_owners(rng: random.Random, count: int) -> list[dict[str, object]]:
    """One dict per vehicle; about one owner in twenty-five has a second car."""
    vehicles: list[dict[str, object]] = []
    start = date(2016, 1, 1)
    for n in range(count):
        dealer = list(DEALERS)[n % 3]
        province, advisors = DEALERS[dealer]
        advisor = "A999" if n in (37, 112, 188, 251) else rng.choice(advisors)
        owner = {
            "owner_id": str(100001 + n),
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
            "phone": make_phone(rng) if n != 150 else "+852 9123 4567",
            "dealer": dealer,
            "advisor": advisor,
            "tier": rng.choice(TIERS),
            "note": rng.choice(NOTES),
        }
        commercial = rng.random() < 0.25
        cars = 2 if rng.random() < 0.04 else 1
        for _ in range(cars):
            model, line, new_energy, wmi = rng.choice(COMMERCIAL if commercial else PASSENGER)
            bought = start + timedelta(days=rng.randrange((AS_OF - start).days - 30))
            age_days = (AS_OF - bought).days
            per_year = rng.randrange(40_000, 90_000) if commercial else rng.randrange(6_000, 20_000)
            mileage = max(300, age_days * per_year // 365)
            serviced_ago = rng.randrange(10, min(age_days, 300))
            serviced_km = max(0, mileage - serviced_ago * per_year // 365)
            vehicles.append(
                {
                    **owner,
                    "vin": make_vin(rng, wmi, bought.year),
                    "plate": make_plate(rng, province, new_energy),
                    "model": model,
                    "line": line,
                    "bought": bought,
                    "serviced": AS_OF - timedelta(days=serviced_ago),
                    "serviced_km": serviced_km,
                    "mileage": mileage,
                }
            )
    return vehicles


def csv_row(rng: random.Random, v: dict[str, object]) -> list[str]:
    return [
        str(v["owner_id"]),
        str(v["name"]),
        str(v["phone"]),
        str(v["vin"]),
        str(v["plate"]),
        str(v["model"]),
        str(v["line"]),
        show_date(rng, v["bought"]),  # type: ignore[arg-type]  # reason: v is a dict of mixed sample values (a TypedDict is the follow-up)
        str(v["dealer"]),
        str(v["advisor"]),
        show_date(rng, v["serviced"]),  # type: ignore[arg-type]  # reason: as above
        show_km(rng, v["serviced_km"]),
        show_km(rng, v["mileage"]),  # type: ignore[arg-type]  # reason: as above
        str(v["tier"]),
        str(v["note"]),
    ]


# (after this many good rows, what to break, how) — README.md explains each by its line.
BAD_ROWS = [
    (20, "VIN with I, O and Q"),
    (55, "VIN of 16 characters"),
    (90, "phone 12345"),
    (130, "purchase date in the future"),
    (170, "mileage below the last service"),
    (210, "date 2023-13-45"),
    (250, "product line 卡车"),
    (290, "VIN of an earlier row under another owner id"),
]


def bad_row(rng: random.Random, kind: str, n: int, vehicles: list[dict[str, object]]) -> list[str]:
    v = dict(make_owners(random.Random(SEED + n), 1)[0])
    v["owner_id"] = str(100900 + n)
    row = csv_row(rng, v)
    if kind.startswith("VIN with"):
        row[3] = "LSVAU2I8OQ2183045"
    elif kind.startswith("VIN of 16"):
        row[3] = row[3][:16]
    elif kind.startswith("phone"):
        row[2] = "12345"
    elif kind.startswith("purchase"):
        row[7] = "2027-03-15"
    elif kind.startswith("mileage"):
        row[11], row[12] = "58,000", "41000"
    elif kind.startswith("date"):
        row[10] = "2023-13-45"
    elif kind.startswith("product"):
        row[6] = "卡车"
    else:
        row[3] = str(vehicles[3]["vin"])
    return row


def write_csv(path: Path) -> list[tuple[int, str]]:
    """Write the GBK CSV; return (file line, what is wrong) for each bad row."""
    rng = random.Random(SEED)
    vehicles = make_owners(rng, 300)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    bad_lines: list[tuple[int, str]] = []
    line = 1
    pending = dict(BAD_ROWS)
    for index, vehicle in enumerate(vehicles):
        writer.writerow(csv_row(rng, vehicle))
        line += 1
        if index + 1 in pending:
            writer.writerow(bad_row(rng, pending[index + 1], index, vehicles))
            line += 1
            bad_lines.append((line, pending[index + 1]))
    path.write_bytes(out.getvalue().encode("gbk"))
    return bad_lines


def write_xlsx(path: Path) -> None:
    """40 owners with English headers: 30 seen in the CSV with a later service, 10 new.
    Purchase dates are date cells, last service dates Excel serial numbers, phones numbers."""
    from openpyxl import Workbook

    rng = random.Random(SEED)
    known = make_owners(rng, 300)
    rng = random.Random(SEED + 1)
    fresh = make_owners(rng, 10)
    for n, v in enumerate(fresh):
        v["owner_id"] = str(100401 + n)
    book = Workbook()
    sheet = book.active
    sheet.title = "owners"
    sheet.append(XLSX_HEADER)
    picked = [v for v in known[::7] if str(v["phone"]).isdigit()][:30] + fresh[:10]
    for v in picked:
        later = 0 if v in fresh else 1_500
        serviced = v["serviced"] if v in fresh else AS_OF - timedelta(days=5)
        sheet.append(
            [
                int(v["owner_id"]),
                v["name"],
                int(v["phone"]) if str(v["phone"]).isdigit() else v["phone"],
                v["vin"],
                v["plate"],
                v["model"],
                "passenger" if v["line"] == "乘用车" else "commercial",
                v["bought"],
                v["dealer"],
                v["advisor"],
                (serviced - date(1899, 12, 30)).days,  # type: ignore[operator]  # reason: as above
                v["mileage"] if v not in fresh else v["serviced_km"],
                int(v["mileage"]) + later,  # type: ignore[call-overload]  # reason: as above
            ]
        )
        sheet.cell(sheet.max_row, 8).number_format = "yyyy-mm-dd"
    for column, width in zip("ABCDEFGHIJKLM", (10, 8, 14, 20, 12, 14, 12, 13, 11, 12, 16, 16, 13), strict=True):
        sheet.column_dimensions[column].width = width
    fixed = datetime(2026, 11, 26)
    book.properties.created = book.properties.modified = fixed
    raw = io.BytesIO()
    book.save(raw)
    _with_fixed_zip_times(raw.getvalue(), path)


def _with_fixed_zip_times(data: bytes, path: Path) -> None:
    """Re-pack the workbook with fixed entry timestamps so the file is byte-for-byte stable."""
    source = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2026, 11, 26, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, source.read(item.filename))


def main() -> None:
    bad = write_csv(HERE / "owners.csv")
    write_xlsx(HERE / "owners.xlsx")
    print("wrote owners.csv (GBK) and owners.xlsx; bad rows in owners.csv:")
    for line, what in bad:
        print(f"  line {line}: {what}")


if __name__ == "__main__":
    main()
