"""Flow files: valid ones load; every mistake names file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flows.engine.flow_files import FlowFileError, load_flow, load_flows
from flows.engine.flow_spec import parse_duration

GOOD = """\
key: newcomer
title: Newcomer
trigger:
  event: verified
entry:
  once: true
audience:
  product_lines: [passenger]
goals:
  - event: gift_redeemed
steps:
  - id: hello
    send:
      template: flows/newcomer_welcome
      class: transactional
  - id: gift
    grant_gift: {type: newcomer}
  - id: wait_use
    wait: {until: gift_redeemed, timeout: 7d, yes: done, no: nudge}
  - id: nudge
    branch:
      if: {field: owner.familiarity, equals: novice}
      then: done
      else: done
  - id: done
    exit: {}
"""


def _write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_flow_loads_with_a_content_version(tmp_path: Path) -> None:
    flow = load_flow(_write(tmp_path, GOOD))
    assert flow.spec.key == "newcomer"
    assert [s.kind for s in flow.spec.steps] == ["send", "grant_gift", "wait", "branch", "exit"]
    assert flow.spec.steps[2].wait.yes == "done"  # YAML 1.2: `yes` is a key, not True
    edited = load_flow(_write(tmp_path, GOOD.replace("title: Newcomer", "title: New"), "b.yaml"))
    assert edited.version != flow.version


@pytest.mark.parametrize(
    ("change", "line", "field", "message"),
    [
        ("    wait: {until: gift_redeemed, timeout: 7d, yes: done, no: nudge}", 19, "steps[2].wait", "needs a timeout"),
        ("  event: verified", 3, "trigger", "exactly one of"),
        ("    grant_gift: {type: newcomer}", 17, "steps[1].grant_gift.type", "Field required"),
        ("      then: done", 24, "", "unknown step 'nowhere'"),
        ("  once: true", 6, "entry.once", "boolean"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path: Path, change: str, line: int, field: str, message: str) -> None:
    replacement = {
        "    wait: {until: gift_redeemed, timeout: 7d, yes: done, no: nudge}": "    wait: {until: gift_redeemed, yes: done, no: nudge}",
        "  event: verified": "  event: verified\n  deep_link: promo",
        "    grant_gift: {type: newcomer}": "    grant_gift: {kind: newcomer}",
        "      then: done": "      then: nowhere",
        "  once: true": "  once: maybe",
    }[change]
    path = _write(tmp_path, GOOD.replace(change, replacement))
    with pytest.raises(FlowFileError) as caught:
        load_flow(path)
    problem = caught.value.problems[0]
    assert problem.path == str(path)
    assert message in problem.message
    if field:
        assert problem.field == field
        assert problem.line == line


def test_broken_yaml_and_duplicate_keys_are_reported_together(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    _write(tmp_path, GOOD, "b.yaml")
    _write(tmp_path, "key: [unclosed\n", "c.yaml")
    with pytest.raises(FlowFileError) as caught:
        load_flows(tmp_path)
    text = str(caught.value)
    assert "b.yaml:1: key: 'newcomer' is also the key of" in text
    assert "c.yaml:" in text and "not valid YAML" in text


def test_durations() -> None:
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(ValueError):
        parse_duration("three days")
