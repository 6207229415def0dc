"""`autocircle templates check`: the repo's templates pass; each kind of breakage is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import templates_cmd
from flows.reports.template_check import check_templates, problem_lines, telegram_html_errors
from flows.templating import LOCALES

LAYOUT = "{% block body %}{% endblock %}\n<i>— AutoCircle</i>"


def test_repo_templates_render_in_every_locale_as_telegram_html() -> None:
    problems = check_templates()
    assert problems == [], "\n".join(map(str, problems))


def _folder(tmp_path: Path, bodies: dict[str, str], samples: str, locales=LOCALES) -> Path:
    for loc in locales:
        (tmp_path / loc / "area").mkdir(parents=True, exist_ok=True)
        (tmp_path / loc / "layout.j2").write_text(LAYOUT, encoding="utf-8")
        for template_id, body in bodies.items():
            text = f'{{% extends "{loc}/layout.j2" %}}{{% block body %}}{body}{{% endblock %}}'
            (tmp_path / loc / f"{template_id}.j2").write_text(text, encoding="utf-8")
    (tmp_path / "samples.yaml").write_text(samples, encoding="utf-8")
    return tmp_path


def _lines(problems) -> list[str]:
    return [str(p) for p in problems]


def test_a_clean_folder_passes(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        {"area/hi": "Hi <b>{{ name }}</b>, {{ gift.code }}"},
        "defaults: {name: 'A<&>'}\ntemplates:\n  area/hi: {gift: {code: X}}\n",
    )
    assert check_templates(root) == []


def test_missing_variable_fails_per_locale(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"area/hi": "Hi {{ name }}"}, "templates:\n  area/hi: {}\n")
    lines = _lines(check_templates(root))
    assert [line.split(":")[0] for line in lines] == ["zh/area/hi", "en/area/hi"]
    assert all("'name' is undefined" in line for line in lines)


def test_missing_variable_in_a_second_sample_is_named(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        {"area/hi": "{% if vip %}{{ title }}{% endif %}ok"},
        "templates:\n  area/hi:\n    - {vip: false}\n    - {vip: true}\n",
    )
    assert all("sample 2" in line for line in _lines(check_templates(root)))


def test_broken_html_fails(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        {"area/a": "<b>open", "area/b": "<div>x</div>", "area/c": "{{ v | safe }}"},
        "defaults: {v: 'a & <b'}\ntemplates:\n  area/a: {}\n  area/b: {}\n  area/c: {}\n",
    )
    text = "\n".join(_lines(check_templates(root)))
    assert "en/area/a: unclosed <b>" in text
    assert "en/area/b: tag <div> is not supported" in text
    assert "en/area/c: a bare '&'" in text


def test_missing_sample_stale_sample_and_missing_locale_fail(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        {"area/hi": "hi", "area/new": "new"},
        "templates:\n  area/hi: {}\n  area/gone: {}\n  area/only_en: {}\n",
    )
    (root / "en" / "area" / "only_en.j2").write_text('{% extends "en/layout.j2" %}', encoding="utf-8")
    lines = _lines(check_templates(root))
    assert "*/area/new: no sample context in samples.yaml" in lines
    assert any(line.startswith("*/area/gone: sample for a template that does not exist") for line in lines)
    assert "zh/area/only_en: missing in this locale" in lines


def test_sample_methods_and_objects(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        {
            "area/m": "{% for g in gs %}{{ g.status(now) }} {{ g.n }}{% endfor %}"
            "{% for k, v in totals.items() %}{{ k }}={{ v }}{% endfor %}"
        },
        'templates:\n  area/m: {now: 1, gs: [{status: {"()": valid}, n: 3}], totals: {a: 1}}\n',
    )
    assert check_templates(root) == []


def test_no_samples_file_is_one_problem(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"area/hi": "hi"}, "")
    (root / "samples.yaml").unlink()
    assert _lines(check_templates(root)) == [f"*/*: {root / 'samples.yaml'}: no samples file"]


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>x</i>", "</i> closes <b>"),
        ("a &nbsp; b", "entity &nbsp;"),
        ("<a>x</a>", "<a> needs an href"),
        ("<span>x</span>", 'class="tg-spoiler"'),
        ("<code><b>x</b></code>", "inside <code>"),
        ("line<br/>", "self-closing"),
        ("1 < 2", "bare '<'"),
        ("x" * 4097, "Telegram allows 4096"),
    ],
)
def test_telegram_html_errors(html: str, error: str) -> None:
    assert any(error in e for e in telegram_html_errors(html)), telegram_html_errors(html)


@pytest.mark.parametrize(
    "html",
    [
        "<b>a</b> <strong>b</strong> <i>c</i> <u>d</u> <s>e</s> <tg-spoiler>f</tg-spoiler>",
        '<a href="https://t.me/x?start=a&amp;b">l</a> &lt;&gt;&amp;&quot; &#128512;',
        '<pre><code class="language-python">x</code></pre> <blockquote expandable>q</blockquote>',
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
    ],
)
def test_telegram_html_accepts_what_telegram_accepts(html: str) -> None:
    assert telegram_html_errors(html) == []


def test_cli_exit_codes(tmp_path: Path) -> None:
    ok = CliRunner().invoke(templates_cmd.app, ["check"])
    assert ok.exit_code == 0, ok.output
    root = _folder(tmp_path, {"area/hi": "Hi {{ name }}"}, "templates:\n  area/hi: {}\n")
    bad = CliRunner().invoke(templates_cmd.app, ["check", str(root)])
    assert bad.exit_code == 1
    assert [line.split(":")[0] for line in bad.output.splitlines()] == ["zh/area/hi", "en/area/hi"]


def test_one_line_per_template_and_locale(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"area/x": "<div>{{ v | safe }}"}, "defaults: {v: '&'}\ntemplates:\n  area/x: {}\n")
    lines = problem_lines(check_templates(root))
    assert len(lines) == 2 and lines[1].startswith("en/area/x: ")
    assert "<div>" in lines[1] and "bare '&'" in lines[1] and lines[1].count("; ") == 1
