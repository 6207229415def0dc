"""``autocircle flows check`` compares every name a flow uses with what the code knows
(issue 12, item 3): a typo'd event, gift type, action or template is reported with
file:line:field, where before it passed and the flow silently never fired."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.engine.flow_diagram import BOX_CHARS, draw, flow_graph
from flows.engine.flow_files import load_flows
from flows.engine.playbook import check_library

GOOD = """\
key: typo_probe
trigger: {event: verified}
goals:
  - {event: gift_redeemed, gift_type: newcomer}
steps:
  - id: hello
    send:
      template: flows/newcomer_welcome
      buttons:
        - [{label: buttons/membership_join, action: probe.yes}]
  - id: ask
    wait: {until: probe, timeout: 1d, yes: gift, no: done}
  - id: gift
    grant_gift: {type: newcomer}
  - id: done
    exit: {reason: done}
"""

TYPOS = [
    ("until: probe,", "until: bookng,", 12, "steps[1].wait.until", "unknown event 'bookng'"),
    ("trigger: {event: verified}", "trigger: {event: verifed}", 2, "trigger.event", "unknown event 'verifed'"),
    ("{event: gift_redeemed,", "{event: gift_redeemd,", 4, "goals[0].event", "unknown event 'gift_redeemd'"),
    ("{type: newcomer}", "{type: newcommer}", 14, "steps[2].grant_gift.type", "unknown gift type 'newcommer'"),
    ("gift_type: newcomer}", "gift_type: newcommer}", 4, "goals[0].gift_type", "unknown gift_type 'newcommer'"),
    ("action: probe.yes}", "action: prob.yes}", 10, "steps[0].send.buttons[0][0].action", "awaited by no wait"),
    (
        "template: flows/newcomer_welcome",
        "template: flows/newcomer_welcom",
        8,
        "steps[0].send.template",
        "missing for zh, en",
    ),
    (
        "label: buttons/membership_join",
        "label: buttons/membership_jion",
        10,
        "steps[0].send.buttons[0][0].label",
        "missing for zh, en",
    ),
]


def _library(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "probe.yaml").write_text(text, encoding="utf-8")
    return folder


def test_the_probe_flow_is_clean(tmp_path: Path) -> None:
    assert check_library(_library(tmp_path, GOOD)) == []


def test_the_shipped_library_is_clean() -> None:
    assert check_library() == []


@pytest.mark.parametrize(("good", "typo", "line", "field", "message"), TYPOS, ids=[t[3] for t in TYPOS])
def test_a_typo_is_named_with_file_line_and_field(
    tmp_path: Path, good: str, typo: str, line: int, field: str, message: str
) -> None:
    assert good in GOOD
    folder = _library(tmp_path, GOOD.replace(good, typo))
    problems = {(p.path, p.line, p.field): p.message for p in check_library(folder)}
    where = (str(folder / "probe.yaml"), line, field)
    assert where in problems, problems
    assert message in problems[where]


def test_an_unknown_action_in_a_capabilitys_namespace_is_named(tmp_path: Path) -> None:
    """``winback.prise`` is in win-back's namespace, which the survey's wait listens to; the
    answer hook knows no ``prise`` (it would count as "other"), so the check names it."""
    text = GOOD.replace("action: probe.yes}", "action: winback.prise}").replace("until: probe,", "until: winback,")
    folder = _library(tmp_path, text)
    problems = {(p.path, p.line, p.field): p.message for p in check_library(folder)}
    assert problems == {
        (str(folder / "probe.yaml"), 10, "steps[0].send.buttons[0][0].action"): (
            "unknown action 'winback.prise' for 'winback'; known: winback.moved, winback.other, "
            "winback.price, winback.service, winback.sold, winback.too_many"
        )
    }
    (folder / "probe.yaml").write_text(text.replace("winback.prise", "winback.price"), encoding="utf-8")
    assert check_library(folder) == []


def test_the_cli_prints_one_line_per_mistake_and_fails(tmp_path: Path) -> None:
    text = GOOD.replace("until: probe,", "until: bookng,").replace("{type: newcomer}", "{type: newcommer}")
    folder = _library(tmp_path, text)
    result = CliRunner().invoke(cli, ["flows", "check", str(folder)])
    assert result.exit_code == 1
    path = folder / "probe.yaml"
    assert result.output.splitlines() == [
        f"{path}:12: steps[1].wait.until: unknown event 'bookng': no such event kind, and no button offers that answer",
        f"{path}:10: steps[0].send.buttons[0][0].action: action 'probe.yes' is awaited by no wait, goal or trigger and handled by no capability",
        f"{path}:14: steps[2].grant_gift.type: unknown gift type 'newcommer'; known: first_order, newcomer, referral_reward, winback",
    ]


def test_the_flow_folder_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _library(tmp_path, GOOD.replace("{type: newcomer}", "{type: newcommer}"))
    monkeypatch.setenv("AUTOCIRCLE_FLOWS_DIR", str(folder))
    result = CliRunner().invoke(cli, ["flows", "check"])
    assert result.exit_code == 1 and str(folder / "probe.yaml") in result.output
    (folder / "probe.yaml").write_text(GOOD.replace("timeout: 1d, ", ""), encoding="utf-8")
    shown = CliRunner().invoke(cli, ["flows", "show", "typo_probe"])
    assert shown.exit_code == 1 and "flows check" in shown.output  # a file that does not load is not drawn


def test_flows_show_draws_every_edge_as_mermaid_and_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCIRCLE_FLOWS_DIR", str(_library(tmp_path, GOOD)))
    result = CliRunner().invoke(cli, ["flows", "show", "typo_probe"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("flowchart TD")
    for edge in (
        "start --> s0",
        "s0 --> s1",
        "s1 -->|answered| s2",
        "s1 -->|timeout| s3",
        "s2 --> s3",
        "s3 --> finish",
    ):
        assert edge in text
    png = tmp_path / "probe.png"
    drawn = CliRunner().invoke(cli, ["flows", "show", "typo_probe", "--format", "png", "--out", str(png)])
    assert drawn.exit_code == 0, drawn.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = CliRunner().invoke(cli, ["flows", "show", "nope"])
    assert unknown.exit_code != 0 and "known: typo_probe" in unknown.output
    bad = CliRunner().invoke(cli, ["flows", "show", "typo_probe", "--format", "svg"])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1


def test_the_png_wraps_a_long_box_text_instead_of_cutting_it() -> None:
    """Win-back's trigger names four cells; the picture shows all of them, on two lines."""
    graph = flow_graph(load_flows()["winback"].spec)
    assert graph.trigger.endswith("mature/dormant") and len(graph.trigger) > BOX_CHARS
    shown = [t.get_text() for t in draw(graph).axes[0].texts]
    trigger = next(t for t in shown if t.startswith("cell_entered:"))
    assert trigger.replace("\n", " ") == graph.trigger
    assert all(len(line) <= BOX_CHARS for text in shown for line in text.splitlines())
