"""Owner export files as the tests write them: the Chinese dealer-system header and a CSV
writer (CRLF lines, as Excel saves them)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

ZH = [
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
    "备注",
]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = ZH, encoding: str = "utf-8") -> Path:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path
