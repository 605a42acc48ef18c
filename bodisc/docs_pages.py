"""The documentation pages written from the code: the campaign-file reference, names, API.

The campaign-file reference is made from the pydantic models of :mod:`bodisc.config`
(each field's type, default and description), the names page from the registries
(acquisition functions, surrogate kinds, shipped oracles, descriptors, filter
catalogues), and the Python API page from the public names of :mod:`bodisc`, so none is
kept by hand. ``python -m bodisc.docs_pages``
writes them under ``docs/reference/``; a test fails when the committed pages differ from
what the code gives.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

REFERENCE = Path("reference")
PAGES = ("campaign-file.md", "names.md", "python-api.md")


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


def names_page() -> str:
    """Every name a campaign file may use, from the registries that define them."""
    from bodisc.acquisition import markdown_table as acquisitions
    from bodisc.chem.filters import CATALOGUES
    from bodisc.descriptors import FAST_QMEX, HESSIAN_QMEX
    from bodisc.descriptors.qmex import DESCRIPTOR_UNITS
    from bodisc.oracle import registered_oracles, resolve_oracle
    from bodisc.surrogates.registry import markdown_table as surrogates

    out = ["# Names", "",
           "Written by `python -m bodisc.docs_pages` from the registries; do not edit it by",
           "hand. The campaign file, the command line and the benchmarks take their choices",
           "from the same registries.", "",
           "## Acquisition functions", "",
           "`[acquisition] name` (`bodisc.acquisition.ACQUISITIONS`). *model*: what scores the",
           "candidates (GP: the campaign's surrogate; own: the strategy learns from the labels",
           "itself). *constraints*: takes `[[constraints]]` (a GP per constrained property).",
           "[Acquisition functions and batches](../concepts/acquisition.md) says when to use",
           "which.", "", acquisitions(),
           "## Surrogate kinds", "",
           "`[surrogate] kind` (`bodisc.surrogates.SURROGATES`); [Surrogates](../surrogates.md)",
           "says when to use which.", "", surrogates(),
           "## Oracles shipped with bodisc", "",
           "`[oracle] name`: the `bodisc.oracles` entry points of this package; a plug-in",
           "adds its own ([Oracles](../howto/oracles.md)). *gives*: every property one call",
           "returns, the first is the default objective.", "",
           "| name | what | gives |", "| --- | --- | --- |"]
    for name, target in sorted(registered_oracles().items()):
        if not target.startswith("bodisc."):
            continue  # a plug-in installed beside bodisc, not part of it
        cls = resolve_oracle(name)
        first = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        first = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", first)  # Sphinx roles read as code
        try:
            gives = cls.provides(cls.Options())
        except ValidationError:  # options without defaults (e.g. the property to look up)
            gives = dict(cls.properties)
        listed = ", ".join(f"`{k}` ({u})" for k, u in gives.items()) or "the `property` option"
        out.append(f"| `{name}` | {_cell(first)} | {listed} |")
    out += ["", "## Descriptors", "",
            "`[descriptors] names`: QMex descriptors from GFN2-xTB; empty means the fast",
            "tier (every one without a Hessian). Each one's recipe is in",
            "`bodisc/descriptors/qmex.py`.", "",
            "| descriptor | unit | tier |", "| --- | --- | --- |"]
    for name in (*FAST_QMEX, *HESSIAN_QMEX):
        tier = "full" if name in HESSIAN_QMEX else "fast, full"
        out.append(f"| `{_cell(name)}` | {_cell(DESCRIPTOR_UNITS.get(name, ''))} | {tier} |")
    out += ["", "## Filter catalogues", "",
            "`[generator] filter_catalogs`: RDKit `FilterCatalog` sets by name.", "",
            ", ".join(f"`{name}`" for name in CATALOGUES), ""]
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


def pages() -> dict[str, str]:
    """Every generated page, file name (under ``docs/reference``) -> Markdown."""
    texts = (campaign_file_page(), names_page(), python_api_page())
    return {name: text.rstrip("\n") + "\n" for name, text in zip(PAGES, texts, strict=True)}


def write(docs: Path) -> list[Path]:
    """Write the generated pages under ``docs/reference``; returns their paths."""
    folder = docs / REFERENCE
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in pages().items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(written)
