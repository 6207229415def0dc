"""Every user-visible text is a Jinja2 template that extends one brand layout per locale.

Autoescape is on for all templates (they produce Telegram HTML), so values from users show
literally: ``<b>x</b>`` stays text and ``{{ 7*7 }}`` is never evaluated (Jinja2 does not
re-parse values). Missing variables fail loudly (StrictUndefined).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, meta

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
LOCALES = ("zh", "en")
DEFAULT_LOCALE = "zh"


def locale_from_telegram(language_code: str | None) -> str | None:
    """A person's Telegram app language as one of ours: English apps get English; anything
    else is left to the deployment's default (``None``)."""
    return "en" if language_code and language_code.startswith("en") else None


class Renderer:
    """Renders ``<area>/<name>`` ids in a locale, falling back to the default locale."""

    def __init__(self, root: Path = TEMPLATES_DIR, default_locale: str = DEFAULT_LOCALE) -> None:
        self.default_locale = default_locale if default_locale in LOCALES else DEFAULT_LOCALE
        self._env = Environment(
            loader=FileSystemLoader(str(root)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # a plain dict, not Jinja's LRU (its lookup is a linear deque scan: ~15 us per
            # template per message); the templates are a few hundred files
            cache_size=-1,
            # templates are read once per process: without this Jinja stats the file (and its
            # layout) on every render to see whether it changed; a template edit needs a restart
            auto_reload=False,
        )
        self._root_dir = root
        self._names: dict[str, frozenset[str]] = {}

    def labels(self, locale: str | None) -> Labels:
        """The vocabulary catalogue of ``locale`` (see ``labels``)."""
        return labels(self.locale_for(locale), self._root_dir)

    def locale_for(self, locale: str | None) -> str:
        """The locale ``render`` uses for a person's ``locale`` (theirs, else the default):
        words put into a message from elsewhere (a gift's value) must follow it."""
        return locale if locale in LOCALES else self.default_locale

    def render(self, template_id: str, locale: str | None = None, /, **context: Any) -> str:
        """Render a template id such as ``onboarding/welcome`` for the locale."""
        loc = self.locale_for(locale)
        try:
            template = self._env.get_template(f"{loc}/{template_id}.j2")
        except TemplateNotFound:
            template = self._env.get_template(f"{self.default_locale}/{template_id}.j2")
        return template.render(locale=loc, labels=self.labels(loc), **context).strip()

    def uses(self, template_id: str, locale: str | None, name: str) -> bool:
        """Whether rendering ``template_id`` in ``locale`` can read the variable ``name``
        (the template, its layout and partials): a caller skips a costly value (a query per
        message) that the text never shows."""
        loc = self.locale_for(locale)
        key = f"{loc}/{template_id}"
        names = self._names.get(key)
        if names is None:
            try:
                names = self._variables(f"{loc}/{template_id}.j2")
            except TemplateNotFound:
                names = self._variables(f"{self.default_locale}/{template_id}.j2")
            self._names[key] = names
        return name in names or "*" in names

    def _variables(self, path: str) -> frozenset[str]:
        """The undeclared names of a template file and of every file it extends or includes
        (``*`` when one of those is named by an expression)."""
        loader = self._env.loader
        assert loader is not None
        seen: set[str] = set()
        names: set[str] = set()
        todo = [path]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            tree = self._env.parse(loader.get_source(self._env, current)[0])
            names |= meta.find_undeclared_variables(tree)
            for ref in meta.find_referenced_templates(tree):
                if ref is None:
                    names.add("*")
                else:
                    todo.append(ref)
        return frozenset(names)

    def template_ids(self) -> list[str]:
        """All message ids (layouts and partials excluded) found for the default locale."""
        ids = []
        for path in sorted((self._root() / self.default_locale).rglob("*.j2")):
            rel = path.relative_to(self._root() / self.default_locale).with_suffix("")
            if rel.name.startswith("_") or rel.as_posix() == "layout":
                continue
            ids.append(rel.as_posix())
        return ids

    def _root(self) -> Path:
        loader = self._env.loader
        assert isinstance(loader, FileSystemLoader)
        return Path(loader.searchpath[0])


class Labels(dict[str, Any]):
    """A locale's vocabulary: ``labels.maturity["beginner"]`` in templates, ``labels.word(
    "beginner")`` in code (any section), with the key itself as the fallback so a new value
    shows as-is rather than failing. The words are distinct but for a key two sections share
    (``expired``: a points line's, a push's): the flat lookups (``word``, ``words``) take the
    later section's, and code that means the other reads its section."""

    def __getattr__(self, section: str) -> dict[str, str]:
        try:
            words: dict[str, str] = self[section]
            return words
        except KeyError:
            raise AttributeError(section) from None

    def word(self, key: str) -> str:
        return self.words().get(key, key)

    def words(self) -> dict[str, str]:
        """Every word flat (``beginner`` → 初级), for tables that translate any value."""
        flat = {k: str(v) for k, v in self.items() if isinstance(v, str)}
        for value in self.values():
            if isinstance(value, dict):
                flat.update({k: str(v) for k, v in value.items()})
        return flat


@lru_cache(maxsize=8)
def labels(locale: str = DEFAULT_LOCALE, root: Path = TEMPLATES_DIR) -> Labels:
    """The one vocabulary catalogue per locale (``templates/<locale>/labels.yaml``): segment
    names, product lines, funnel stages, familiarity, churn reasons."""
    loc = locale if locale in LOCALES else DEFAULT_LOCALE
    path = root / loc / "labels.yaml"
    if not path.is_file():
        path = TEMPLATES_DIR / loc / "labels.yaml"
    return Labels(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


@lru_cache(maxsize=4)
def default_renderer(default_locale: str = DEFAULT_LOCALE) -> Renderer:
    return Renderer(default_locale=default_locale)
