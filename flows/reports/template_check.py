"""``autocircle templates check``: every message renders in every locale and is valid Telegram HTML.

Templates fail in production in two quiet ways: a variable the caller does not pass (the
renderer is strict, so the owner gets the generic error instead of the message) and HTML that
Telegram refuses ("can't parse entities"), so the push is marked failed. Both are caught here by
rendering each message id with the sample contexts in ``templates/samples.yaml`` and parsing the
result the way Telegram's HTML mode does. The parser is written here with the stdlib on purpose:
``flows`` never imports ``bot`` (where the sandbox's own parser lives).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateError

from flows.templating import LOCALES, TEMPLATES_DIR, Renderer

SAMPLES_NAME = "samples.yaml"
MAX_MESSAGE_CHARS = 4096  # Telegram's limit for one text message, after entity parsing

# Tags Telegram's HTML parse mode accepts, with the attributes each may carry.
_ALLOWED_ATTRS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "tg-spoiler": frozenset(),
    "pre": frozenset(),
    "span": frozenset({"class"}),
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "blockquote": frozenset({"expandable"}),
    "tg-emoji": frozenset({"emoji-id"}),
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_AMP = re.compile(r"&(?!(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z]+);)")


@dataclass(frozen=True)
class TemplateProblem:
    """One template in one locale that does not render or does not parse; ``str`` is one line."""

    template_id: str
    locale: str
    message: str

    def __str__(self) -> str:
        return f"{self.locale}/{self.template_id}: {self.message}"


class _Returns:
    """A sample method: ``{"()": value}`` in the samples file; returns ``value`` for any call.

    Other mappings stay dicts: Jinja reads ``obj.field`` from a dict's items, and templates
    that loop over ``mapping.items()`` get a real dict, as they do in production.
    """

    def __init__(self, value: Any) -> None:
        self._value = value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._value


def _objectify(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"()"}:
            return _Returns(_objectify(value["()"]))
        return {str(k): _objectify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_objectify(v) for v in value]
    return value


class SamplesError(Exception):
    """The samples file itself is missing or malformed."""


@dataclass(frozen=True)
class Samples:
    defaults: dict[str, Any]
    templates: dict[str, list[dict[str, Any]]]

    def contexts(self, template_id: str) -> list[dict[str, Any]]:
        """The contexts to render ``template_id`` with: defaults overlaid by each sample."""
        return [
            {k: _objectify(v) for k, v in {**self.defaults, **sample}.items()}
            for sample in self.templates.get(template_id, [])
        ]


def load_samples(path: Path) -> Samples:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise SamplesError(f"{path}: no samples file") from exc
    except yaml.YAMLError as exc:
        raise SamplesError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SamplesError(f"{path}: expected a mapping with 'defaults' and 'templates'")
    defaults = data.get("defaults") or {}
    templates = data.get("templates") or {}
    if not isinstance(defaults, dict) or not isinstance(templates, dict):
        raise SamplesError(f"{path}: 'defaults' and 'templates' must be mappings")
    per_id: dict[str, list[dict[str, Any]]] = {}
    for template_id, entry in templates.items():
        entries = entry if isinstance(entry, list) else [entry or {}]
        if not entries or not all(isinstance(e, dict) for e in entries):
            raise SamplesError(f"{path}: templates.{template_id}: expected a mapping or a list of mappings")
        per_id[str(template_id)] = [dict(e) for e in entries]
    return Samples(defaults=dict(defaults), templates=per_id)


class _TelegramHTML(HTMLParser):
    """Collects what Telegram's HTML parse mode would reject in one message."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.errors: list[str] = []
        self.stack: list[str] = []
        self.text_len = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_ATTRS:
            self.errors.append(f"tag <{tag}> is not supported by Telegram")
            return
        names = {name for name, _ in attrs}
        extra = names - _ALLOWED_ATTRS[tag]
        if extra:
            self.errors.append(f"<{tag}> has unsupported attribute(s) {', '.join(sorted(extra))}")
        values = dict(attrs)
        if tag == "span" and values.get("class") != "tg-spoiler":
            self.errors.append('<span> needs class="tg-spoiler"')
        if tag == "a" and not values.get("href"):
            self.errors.append("<a> needs an href")
        if tag == "tg-emoji" and not (values.get("emoji-id") or "").isdigit():
            self.errors.append("<tg-emoji> needs a numeric emoji-id")
        if tag == "code" and "class" in values and not (values["class"] or "").startswith("language-"):
            self.errors.append('<code class> must be "language-..."')
        if self.stack and self.stack[-1] in ("code", "pre") and not (self.stack[-1] == "pre" and tag == "code"):
            self.errors.append(f"<{tag}> inside <{self.stack[-1]}>: Telegram allows no markup there")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.errors.append(f"self-closing <{tag}/> is not supported by Telegram")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _ALLOWED_ATTRS:
            self.errors.append(f"closing tag </{tag}> is not supported by Telegram")
        elif not self.stack:
            self.errors.append(f"</{tag}> closes nothing")
        elif self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1]}>")
            if tag in self.stack:
                del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data:
            self.errors.append("a bare '<' must be written &lt;")
        self.text_len += len(data)

    def handle_entityref(self, name: str) -> None:
        if name not in _NAMED_ENTITIES:
            self.errors.append(f"entity &{name}; is not supported by Telegram (only &lt; &gt; &amp; &quot;)")
        self.text_len += 1

    def handle_charref(self, name: str) -> None:
        self.text_len += 1

    def handle_comment(self, data: str) -> None:
        self.errors.append("HTML comments are not supported by Telegram")

    def handle_decl(self, decl: str) -> None:
        self.errors.append("declarations are not supported by Telegram")

    def handle_pi(self, data: str) -> None:
        self.errors.append("processing instructions are not supported by Telegram")


def telegram_html_errors(text: str) -> list[str]:
    """What Telegram's HTML parse mode would reject in ``text``; empty when it is fine."""
    errors: list[str] = []
    if _AMP.search(text):
        errors.append("a bare '&' must be written &amp;")
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.rawdata:  # an unterminated tag such as "<b" stays unparsed
        errors.append(f"unterminated markup {parser.rawdata[:20]!r}")
    errors.extend(parser.errors)
    if parser.stack:
        errors.append("unclosed " + ", ".join(f"<{t}>" for t in parser.stack))
    if not text.strip():
        errors.append("renders to an empty message")
    elif parser.text_len > MAX_MESSAGE_CHARS:
        errors.append(f"{parser.text_len} characters, Telegram allows {MAX_MESSAGE_CHARS}")
    return list(dict.fromkeys(errors))


def check_templates(root: Path = TEMPLATES_DIR, samples_path: Path | None = None) -> list[TemplateProblem]:
    """Every problem with the templates under ``root``; empty when all is well.

    Checks that each message id exists in every locale, has an entry in the samples file,
    renders with each of its sample contexts, and gives valid Telegram HTML. Sample entries for
    ids that no longer exist are reported too, so the samples file does not rot.
    """
    samples_path = samples_path or root / SAMPLES_NAME
    try:
        samples = load_samples(samples_path)
    except SamplesError as exc:
        return [TemplateProblem("*", "*", str(exc))]
    renderer = Renderer(root)
    ids = _message_ids(root)
    problems: list[TemplateProblem] = []
    for template_id in sorted(set(samples.templates) - set(ids)):
        problems.append(
            TemplateProblem(template_id, "*", f"sample for a template that does not exist ({samples_path.name})")
        )
    for template_id in ids:
        if template_id not in samples.templates:
            problems.append(TemplateProblem(template_id, "*", f"no sample context in {samples_path.name}"))
            continue
        for locale in LOCALES:
            if not (root / locale / f"{template_id}.j2").is_file():
                problems.append(TemplateProblem(template_id, locale, "missing in this locale"))
                continue
            problems.extend(_check_one(renderer, template_id, locale, samples.contexts(template_id)))
    return problems


def problem_lines(problems: Iterable[TemplateProblem]) -> list[str]:
    """One line per failing template and locale (its problems joined), in check order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        grouped.setdefault((problem.locale, problem.template_id), []).append(problem.message)
    return [f"{locale}/{template_id}: {'; '.join(messages)}" for (locale, template_id), messages in grouped.items()]


def _check_one(
    renderer: Renderer, template_id: str, locale: str, contexts: Iterable[dict[str, Any]]
) -> list[TemplateProblem]:
    problems: list[TemplateProblem] = []
    for n, context in enumerate(contexts, start=1):
        where = f"sample {n}: " if n > 1 else ""
        try:
            text = renderer.render(template_id, locale, **context)
        except TemplateError as exc:
            problems.append(TemplateProblem(template_id, locale, f"{where}{type(exc).__name__}: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - a sample of the wrong shape: still this template's problem
            problems.append(TemplateProblem(template_id, locale, f"{where}{type(exc).__name__}: {exc}"))
            continue
        for error in telegram_html_errors(text):
            problems.append(TemplateProblem(template_id, locale, f"{where}{error}"))
    return problems


def _message_ids(root: Path) -> list[str]:
    """Message ids found in any locale (so one present only in ``en`` is still checked)."""
    ids: set[str] = set()
    for locale in LOCALES:
        base = root / locale
        for path in base.rglob("*.j2"):
            rel = path.relative_to(base).with_suffix("")
            if rel.name.startswith("_") or rel.as_posix() == "layout":
                continue
            ids.add(rel.as_posix())
    return sorted(ids)
