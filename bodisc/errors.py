"""The one exception hierarchy of bodisc.

Every error a user can cause is a :class:`BodiscError` whose ``str()`` is a single line
that says what was wrong and what is allowed. The CLI prints that line and exits with
:attr:`BodiscError.exit_code`.
"""

from __future__ import annotations


class BodiscError(Exception):
    """Base class of every error bodisc raises on purpose."""

    exit_code: int = 1


class ConfigError(BodiscError):
    """A campaign file (or a value given for one of its fields) is not valid.

    Args:
        file: The campaign file, as the user named it.
        field: Dotted path of the offending field, e.g. ``acquisition.name``.
        value: The bad value (``None`` when the field is missing).
        allowed: What would have been accepted.
    """

    exit_code = 2

    def __init__(self, file: str, field: str, value: object, allowed: str) -> None:
        self.file, self.field, self.value, self.allowed = file, field, value, allowed
        shown = _short_repr(value)
        super().__init__(f"{file}: {field} = {shown}: {allowed}")


class RegistryError(BodiscError):
    """A name could not be resolved in a registry (oracles, acquisitions, ...)."""

    exit_code = 2


class StoreError(BodiscError):
    """The campaign store cannot be used (locked, unwritable, from another campaign)."""

    exit_code = 3


class TellError(BodiscError):
    """A result handed to a campaign cannot be taken (unknown molecule, a second label)."""

    exit_code = 2


class InputError(BodiscError):
    """A file of molecules or labels the user brought cannot be read as it is.

    Unlike the other errors its message may have several lines: one per problem found
    in the file (all of them are collected before raising), each naming the file, the
    row, the column, the value and what is allowed (characters that are not printable
    are escaped, so a problem is always one line); more than ``limit`` problems are
    summed up in a last line ``<file>: ... and N more problem(s)``.

    Args:
        file: The file, as the user named it.
        problems: One line per problem, each starting with ``file``.
        limit: How many problem lines the message shows.
    """

    exit_code = 2

    def __init__(self, file: str, problems: list[str] | tuple[str, ...], limit: int = 20) -> None:
        self.file, self.problems = file, tuple(_one_line(p) for p in problems)
        shown = list(self.problems[:limit])
        if len(self.problems) > limit:
            shown.append(f"{file}: ... and {len(self.problems) - limit} more problem(s)")
        super().__init__("\n".join(shown))


class InvalidMoleculeError(BodiscError):
    """A SMILES string that RDKit cannot turn into a sane molecule."""


class MoleculeFailure(BodiscError):
    """A molecule failed in a calculation (embedding, descriptors, oracle).

    The campaign records the reason and goes on; this is a value for one molecule,
    never the end of a campaign.
    """


class OptionalDependencyError(BodiscError):
    """An optional dependency is missing; the message gives the install command."""

    exit_code = 2


def _one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped (no line breaks)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _short_repr(value: object, limit: int = 80) -> str:
    text = "(missing)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
