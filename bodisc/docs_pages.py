"""The documentation pages written from the code: the campaign-file reference, the API list.

The campaign-file reference is made from the pydantic models of :mod:`bodisc.config`
(each field's type, default and description), and the Python API page from the public
names of :mod:`bodisc`, so neither is kept by hand. ``python -m bodisc.docs_pages``
writes them under ``docs/reference/``; a test fails when the committed pages differ from
what the code gives.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

REFERENCE = Path("reference")
PAGES = ("campaign-file.md", "python-api.md")


def _type_name(annotation: Any) -> str:
    """A short readable name of a field's type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin in (tuple, list):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {_type_name(inner[0])}" if inner else "list"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models inside a field's type (a section, a list of sections, an optional one)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        value = list(value)
    text = repr(value).replace("'", '"')
    if isinstance(value, bool):
        text = text.lower()
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def campaign_file_page() -> str:
    """The campaign-file reference: one table per section, from the config models."""
    from bodisc.config import CampaignConfig

    out = ["# Campaign file reference", "",
           "Written by `python -m bodisc.docs_pages` from the models in `bodisc/config.py`",
           "(types, defaults and the fields' descriptions); do not edit it by hand.",
           "`campaigns/dipole.toml` is a complete example, and `bodisc validate FILE`",
           "checks a file without running anything.", ""]
    seen: list[type[BaseModel]] = []
    queue: list[tuple[str, type[BaseModel]]] = [("top level", CampaignConfig)]
    while queue:
        title, model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        doc = (model.__doc__ or "").strip().split("\n\n")[0]
        out += [f"## {model.__name__}", "", f"Section: {title}.", ""]
        if doc:
            out += [" ".join(doc.split()), ""]
        out += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if field.exclude or name.startswith("_"):
                continue
            desc = _cell(field.description or "")
            subs = _models(field.annotation)
            if not desc and subs:  # a section: its model's first line, and a link
                first = (subs[0].__doc__ or "").strip().split("\n\n")[0]
                desc = _cell(first)
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} "
                       f"| {desc} |")
            for sub in subs:
                section = (f"`[{name}]`" if title == "top level"
                           else f"`{name}` in {title}")
                if sub.__name__ in ("ObjectiveConfig", "ConstraintConfig") and \
                        title == "top level" and name in ("objectives", "constraints"):
                    section = f"`[[{name}]]`"
                queue.append((section, sub))
        out.append("")
    return "\n".join(out)


def python_api_page() -> str:
    """The public Python API: every name of ``bodisc.__all__``, documented by mkdocstrings."""
    import bodisc

    out = ["# Python API", "",
           "Written by `python -m bodisc.docs_pages` from `bodisc.__all__`: everything",
           "`from bodisc import ...` offers, with its docstring. The rest of the package",
           "is internal. [The overview](../api.md) says how the pieces fit.", ""]
    for name in sorted(bodisc._EXPORTS):
        out += [f"::: {bodisc._EXPORTS[name]}.{name}", ""]
    return "\n".join(out)


def write(docs: Path) -> list[Path]:
    """Write the generated pages under ``docs/reference``; returns their paths."""
    folder = docs / REFERENCE
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in zip(PAGES, (campaign_file_page(), python_api_page()), strict=True):
        path = folder / name
        path.write_text(text.rstrip("\n") + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(written)
