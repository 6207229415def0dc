"""`autocircle report opportunities` prints each partner's and dealer's whole book, not only
their deals, and escapes names (Rich markup in a name is text)."""

from __future__ import annotations

from bot.cli.opportunities_cmd import _book_line


def test_a_partner_line_shows_posted_matched_rate_deals_and_time_to_match() -> None:
    row = {
        "name": "Li [bold]",
        "posted": 4,
        "matched": 3,
        "completed": 2,
        "match_rate": 0.75,
        "minutes_to_match_p50": 12.0,
        "minutes_to_match_p95": 30.5,
    }
    line = _book_line("partner", "A001", row)
    assert line == (
        "partner A001 Li \\[bold]: posted 4  matched 3 (75%)  deals 2  time to match p50 12.0 min p95 30.5 min"
    )


def test_a_dealer_without_matches_has_no_timing() -> None:
    row = {
        "name": "D",
        "posted": 1,
        "matched": 0,
        "completed": 0,
        "match_rate": 0.0,
        "minutes_to_match_p50": None,
        "minutes_to_match_p95": None,
    }
    assert _book_line("dealer", "D1", row) == "dealer D1 D: posted 1  matched 0 (0%)  deals 0"
