"""The README's first command must keep working: a short demo run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from demo.scenario import Demo, DemoOptions

pytestmark = pytest.mark.e2e


async def test_short_demo_runs_and_writes_its_reports(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await Demo(DemoOptions(owners_per_partner=2, failures=1, days=7, out_dir=tmp_path, say=lines.append)).run()
    assert result.owners_import.rejected == 8
    assert result.circles >= 6
    assert result.verified == 11 and result.failed == 1
    assert result.funnel is not None and result.funnel.total.verified >= 11
    assert result.days is not None and result.days.gifts_granted > 0
    assert (tmp_path / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "owners.xlsx").stat().st_size > 0
    book = load_workbook(tmp_path / "operations.xlsx", read_only=True)
    assert book.sheetnames == [
        "funnel",
        "matrix",
        "campaigns",
        "referrals",
        "churn reasons",
        "settlement",
        "offers",
        "merchants",
        "points",
        "tasks",
    ]
    funnel = list(book["funnel"].iter_rows(values_only=True))
    assert funnel[0][:4] == ("advisor_code", "name", "dealer_code", "imported")
    assert funnel[-1][3] == result.funnel.total.imported  # the same numbers as the printed funnel
    assert any("day 7" in line for line in lines)
    # the day-7 campaigns, "sent now" by each partner, really went out: members picked, sent
    engine = create_engine(f"sqlite:///{tmp_path / 'autocircle-demo.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, sent_at FROM campaign")).all()
        members = conn.execute(text("SELECT count(*) FROM campaign_member")).scalar_one()
    assert rows and all(status == "done" and sent_at is not None for status, sent_at in rows)
    assert members > 0 and len(result.days.campaigns) == len(rows)
    # one campaign (the fleet's) is big enough for a verdict: an uplift with its 95% interval,
    # and a conversion rate below 100% (most owners never book)
    assert any("uplift" in line and "(95%" in line for line in result.days.campaigns), result.days.campaigns
    sheet = list(book["campaigns"].iter_rows(values_only=True))
    head = sheet[0]
    told = [dict(zip(head, row, strict=True)) for row in sheet[1:]]
    told = [r for r in told if r["uplift 95% low (pp)"] is not None]
    assert told and all(0 < r["converted"] < r["treated"] for r in told)
    assert all(r["uplift 95% low (pp)"] <= r["uplift (pp)"] <= r["uplift 95% high (pp)"] for r in told)
    # the flows find the demo's offers: beginner_nudge's first-wash coupon is never "no offer"
    with engine.connect() as conn:
        no_offer = conn.execute(text("SELECT count(*) FROM flow_run_log WHERE reason LIKE 'no offer with key%'"))
        assert no_offer.scalar_one() == 0
        keyed = conn.execute(text("SELECT status FROM offer WHERE key = 'first_wash'")).scalar_one()
    engine.dispose()
    assert keyed == "live"
    await _the_printed_console_command_opens_the_console(result.console_command, tmp_path)


async def _the_printed_console_command_opens_the_console(command: str, tmp_path: Path) -> None:
    """What the demo prints last gives a fresh sign-in link that signs in (the demo's own link
    was spent by its screenshots and its server has stopped)."""
    import asyncio
    import os
    import re
    import signal
    import socket

    import aiohttp

    assert "web --link" in command and "autocircle-demo.db" in command
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]  # the printed command is for the checkout's root
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCIRCLE_")}
    process = await asyncio.create_subprocess_shell(
        f"exec env {command} --port {port}",
        cwd=root,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out = b""
        while b"Ctrl+C" not in out:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, out.decode()
            out += line
        link = re.search(r"(http://\S+/login\?t=\S+)", out.decode()).group(1)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            form = await (await http.get(link)).text()
            pre = re.search(r'name="pre" value="([^"]+)"', form).group(1)
            token = re.search(r'name="t" value="([^"]+)"', form).group(1)
            signed = await http.post(link.split("?")[0], data={"t": token, "pre": pre})
            assert signed.status == 200 and 'id="total-imported"' in await signed.text()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
