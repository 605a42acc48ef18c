"""The documentation: the site builds in strict mode, the generated pages are current,
README stays short and its campaign file is valid."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bodisc import docs_pages

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_reference_pages_are_current():
    """Run ``python -m bodisc.docs_pages`` after changing a config field or the API."""
    for name, text in docs_pages.pages().items():
        committed = (ROOT / "docs" / docs_pages.REFERENCE / name).read_text()
        assert committed == text, f"docs/reference/{name} is stale"


def test_the_names_page_lists_every_registered_name():
    from bodisc.acquisition import ACQUISITIONS
    from bodisc.surrogates import SURROGATES

    page = docs_pages.names_page()
    for name in (*ACQUISITIONS, *SURROGATES, "xtb_dipole", "pyscf_dipole", "qm9"):
        assert f"| `{name}` |" in page, name
    assert all(spec.description for spec in ACQUISITIONS.values())
    assert all(spec.description for spec in SURROGATES.values())


def test_every_config_field_has_a_description_in_the_reference():
    page = docs_pages.campaign_file_page()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) > 80
    assert not [r for r in rows if r.rstrip().endswith("|  |")]
    assert "`[execution]`" in page and "| `mode` |" in page


def test_readme_is_short_and_its_campaign_file_is_valid(tmp_path):
    from bodisc.config import load_campaign

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    block = re.search(r"```toml\n(# my_dipole.toml.*?)```", readme, re.S).group(1)
    path = tmp_path / "my_dipole.toml"
    path.write_text(block)
    assert tomllib.loads(block)["name"] == "my_dipole"
    cfg = load_campaign(path)
    assert cfg.oracle.name == "xtb_dipole" and cfg.budget.oracle_calls == 80


def test_readme_and_docs_link_only_to_files_that_exist():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "python-api" / "index.html").read_text()
    assert "Choose the next batch" in api  # Campaign.ask's docstring, by mkdocstrings
    assert (tmp_path / "site" / "reference" / "campaign-file" / "index.html").exists()


def _documented_commands() -> list[tuple[str, str]]:
    """``(page, command line)`` of every ``bodisc`` command in a code block of the docs."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md",
             *sorted(p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.parts)]
    found = []
    for page in pages:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                m = re.search(r"(?:^|\s|/)bodisc\s+([a-z].*)$", line.split("#")[0])
                if m and not line.lstrip().startswith(("from ", "import ")):
                    found.append((str(page.relative_to(ROOT)), m.group(1)))
    return found


def test_every_documented_command_and_option_exists():
    """Commands in the docs name real subcommands and options (so none drifts)."""
    import typer

    from bodisc.cli import app

    root = typer.main.get_command(app)
    commands = _documented_commands()
    assert len(commands) > 30
    bad: list[str] = []
    for page, line in commands:
        tokens = [t for t in re.split(r"[\s\[\]|]+", line) if t]
        cmd, used = root, []
        while hasattr(cmd, "commands") and tokens and tokens[0] in cmd.commands:
            used.append(tokens[0])
            cmd = cmd.commands[tokens.pop(0)]
        assert used and not hasattr(cmd, "commands"), f"{page}: bodisc {line}"
        if (getattr(cmd, "context_settings", None) or {}).get("allow_extra_args"):
            continue  # it hands its options on (bench pool-memory)
        known = {o for p in cmd.params for o in getattr(p, "opts", [])} | {"--help"}
        for token in tokens:
            if token.startswith("--"):
                option = token.split("=")[0]
                if option not in known:
                    bad.append(f"{page}: bodisc {line}: no option {option}")
    assert not bad, "\n".join(bad)


def _command_path(root, line: str) -> tuple[str, ...]:
    """The subcommand names at the start of a documented command line."""
    tokens = [t for t in re.split(r"[\s\[\]|]+", line) if t]
    cmd, used = root, []
    while hasattr(cmd, "commands") and tokens and tokens[0] in cmd.commands:
        used.append(tokens[0])
        cmd = cmd.commands[tokens.pop(0)]
    return tuple(used)


def test_every_documented_command_is_run_by_a_test_or_left_a_committed_result():
    """A command in the docs is run by a test, or it is a benchmark whose page names the
    committed result file it wrote (under ``docs/results``), so a person can regenerate
    the page's figures and compare. A result file named in a command line must be there."""
    import typer

    from bodisc.cli import app

    root = typer.main.get_command(app)
    tests_text = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    by_path: dict[tuple[str, ...], set[str]] = {}
    missing: list[str] = []
    for page, line in _documented_commands():
        path = _command_path(root, line)
        for name in re.findall(r"--(?:json|out)\s+(docs/results/\S+)", line):
            if not (ROOT / name).exists():
                missing.append(f"{page}: bodisc {line}: {name} is not committed")
        by_path.setdefault(path, set()).add(page)
    assert not missing, "\n".join(missing)

    def names_a_committed_result(page: str) -> bool:
        if page in ("README.md", "docs/commands.md"):  # lists of commands, no results
            return False
        named = re.findall(r"docs/results/[\w./-]+\w", (ROOT / page).read_text())
        return any((ROOT / name).exists() for name in named)

    unrun = []
    for path, where in sorted(by_path.items()):
        quoted = r"[\"']" + r"[\"'],\s*[\"']".join(map(re.escape, path)) + r"[\"']"
        if re.search(quoted, tests_text):
            continue
        if path[0] == "bench" and any(names_a_committed_result(p) for p in where):
            continue
        unrun.append(" ".join(path))
    assert not unrun, f"documented, but neither run by a test nor with a committed result: {unrun}"


def test_every_benchmark_page_gives_command_date_commit_machine_and_figure():
    """Each benchmark page in the site says how to regenerate it, when, at which commit and
    on what machine, and shows a figure: no figure without the command and file behind it."""
    pages = re.findall(r"(benchmarks/\w+\.md)", (ROOT / "mkdocs.yml").read_text())
    assert len(pages) >= 15
    missing = []
    for name in pages:
        text = (ROOT / "docs" / name).read_text()
        code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
                         + re.findall(r"`([^`\n]+)`", text))
        checks = {
            "command": re.search(r"\bbodisc\s+(bench|campaign|compare)\b|python \S+\.py",
                                 code),
            "date": re.search(r"\b20\d\d-\d\d-\d\d\b", text),
            "commit": re.search(r"(`|\| )[0-9a-f]{7,40}(`| \|)", text),
            "machine": re.search(r"\b\d+[- ]cores?\b|\bGPU\b|[Mm]achine", text),
            "figure": re.search(r"!\[[^\]]*\]\([^)]+\.png\)", text),
        }
        missing += [f"{name}: no {what}" for what, found in checks.items() if not found]
    assert not missing, "\n".join(missing)
