"""Segment reports in the bot: partners see their own matrix and export; operators see all."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from tests.support.harness import OPERATOR_ID

pytestmark = pytest.mark.e2e
A_TG, B_TG = 5001, 5002


async def _seed(harness) -> None:
    code_a = await harness.add_partner("A101", name="Alice")
    code_b = await harness.add_partner("B201", name="Bob", dealer_code="D002")
    for i in range(3):
        await harness.add_owner(
            f"A-{i}", name=f"Owner A{i}", phone=f"+861380000000{i}", vin=f"LSVAB2BJ7MN00000{i}", advisor_code="A101"
        )
    await harness.add_owner(
        "B-0",
        name="Owner B0",
        phone="+8613900000000",
        vin="LSVAB2BJ7MN100000",
        advisor_code="B201",
        product_line="commercial",
    )
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)


async def test_partner_matrix_is_a_picture_of_their_own_owners(harness) -> None:
    sb = harness.sandbox
    await _seed(harness)
    await sb.send_text(A_TG, A_TG, "/matrix")
    photo = await sb.wait_for_bot_message(A_TG, predicate=lambda m: "photo" in m, timeout=20)
    assert "3" in photo["caption"] and len(photo["caption"]) <= 1024
    await sb.send_text(A_TG, A_TG, "/matrix trucks")
    await sb.wait_for_bot_message(A_TG, contains="/matrix")


async def test_partner_export_masks_phone_and_vin(harness) -> None:
    sb = harness.sandbox
    await _seed(harness)
    await sb.send_text(A_TG, A_TG, "/export")
    message = await sb.wait_for_bot_message(A_TG, predicate=lambda m: "document" in m, timeout=20)
    record = sb.world.files[message["document"]["file_id"]]
    sheet = load_workbook(io.BytesIO(record.content)).active
    values = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert any("Owner A0" in v for v in values)
    assert not any("Owner B0" in v for v in values)
    assert not any("+8613800000000" in v for v in values)
    assert not any("LSVAB2BJ7MN000000" in v for v in values)


async def test_operator_matrix_covers_everyone_and_owners_cannot_ask(harness) -> None:
    sb = harness.sandbox
    await _seed(harness)
    await sb.add_user(OPERATOR_ID, first_name="Ops")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/matrix")
    photo = await sb.wait_for_bot_message(OPERATOR_ID, predicate=lambda m: "photo" in m, timeout=20)
    assert "4" in photo["caption"]
    await sb.add_user(6001, first_name="Owner")
    await sb.send_text(6001, 6001, "/matrix")
    await sb.wait_for_bot_message(6001, contains="partners only")
