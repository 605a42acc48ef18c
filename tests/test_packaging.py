"""The built wheel installs and works outside the checkout (CI itself installs editable).

The last test (about 5 s) builds the wheel from a copy of the sources, installs it with
``--no-deps`` into a fresh virtual environment whose dependencies come from the running
environment through a ``.pth`` file (``.pth`` files inside a directory added that way are
not processed, so this checkout's editable finder stays inactive), and runs it from an
empty folder.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
#: The built-in oracles: the repository's oracles/ folder, installed under this name.
ORACLES_PACKAGE = "bodisc.builtin_oracles"
BUILTIN_ORACLES = {"xtb_dipole", "pyscf_dipole", "pyscf_gap", "qm9", "external"}


def _packages_on_disk() -> set[str]:
    """Dotted names of the packages the wheel must hold: folders with an ``__init__.py``."""
    found = {ORACLES_PACKAGE}
    for init in (ROOT / "bodisc").rglob("__init__.py"):
        if "__pycache__" not in init.parts:
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_every_package_is_listed_in_pyproject():
    listed = set(SETUPTOOLS["packages"])
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    gone = sorted(listed - _packages_on_disk())
    assert not gone, f"remove {gone} from [tool.setuptools] packages in pyproject.toml"
    assert SETUPTOOLS["package-dir"] == {ORACLES_PACKAGE: "oracles"}
    targets = PYPROJECT["project"]["entry-points"]["bodisc.oracles"]
    assert set(targets) == BUILTIN_ORACLES
    assert all(t.startswith(f"{ORACLES_PACKAGE}.") for t in targets.values())


def test_the_version_lives_in_one_place():
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert SETUPTOOLS["dynamic"]["version"] == {"attr": "bodisc.__version__"}


def test_the_citation_file_names_the_running_version():
    import yaml

    import bodisc

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == bodisc.__version__
    assert cff["license"] == PYPROJECT["project"]["license"]["text"]


def _copy_sources(dest: Path) -> None:
    """What the build reads (what an sdist holds), without caches or old build output."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("bodisc", "oracles"):
        shutil.copytree(ROOT / name, dest / name, ignore=skip)


def _site_dirs() -> list[str]:
    """The running environment's site-packages folders (dependencies of the install)."""
    paths = sysconfig.get_paths()
    dirs = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc


def test_the_wheel_works_outside_the_checkout(tmp_path):
    src, dist, venv, empty = (tmp_path / n for n in ("src", "dist", "venv", "empty"))
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PYTHONNOUSERSITE"] = "1"

    # build from a copy, so that nothing is written into the checkout
    _copy_sources(src)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--no-index", "-q", "-w", str(dist), str(src)], empty, env, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("bodisc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.startswith("bodisc-")} == {"bodisc"}, tops
    for package in _packages_on_disk():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert "bodisc/data/descriptors/qm9-fast-v1.npz" in names

    # a fresh environment, the running one's packages behind a .pth file
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], empty, env)
    assert made.returncode == 0, made.stderr
    python, bodisc = venv / "bin" / "python", venv / "bin" / "bodisc"
    venv_site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], empty, env).stdout.strip()
    (Path(venv_site) / "zz_bodisc_test_deps.pth").write_text("\n".join(_site_dirs()) + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install",
                      "--no-deps", "--no-index", "-q", str(wheel)], empty, env, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]

    helped = _run([str(bodisc), "--help"], empty, env)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "campaign" in helped.stdout

    code = (
        "import inspect, pathlib, bodisc, numpy as np\n"
        "from bodisc.data import shipped_descriptors\n"
        "from bodisc.oracle import registered_oracles, resolve_oracle\n"
        "print(pathlib.Path(bodisc.__file__).resolve())\n"
        "print(bodisc.__version__)\n"
        "(file,) = shipped_descriptors('fast')\n"
        "print(file.resolve())\n"
        "with np.load(file) as data:\n"
        "    print(len(data['qm9_index']), data['values'].shape[1])\n"
        "for name in sorted(registered_oracles()):\n"
        "    cls = resolve_oracle(name)\n"
        "    print(name, cls.__module__, pathlib.Path(inspect.getfile(cls)).resolve())\n"
    )
    ran = _run([str(python), "-c", code], empty, env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    prefix = str(Path(venv_site).resolve())
    assert lines[0].startswith(prefix), lines[0]
    source = (ROOT / "bodisc" / "__init__.py").read_text()
    assert f'__version__ = "{lines[1]}"' in source and wheel.name.startswith(
        f"bodisc-{lines[1]}-")
    assert lines[2].startswith(prefix) and lines[2].endswith("qm9-fast-v1.npz"), lines[2]
    rows, columns = map(int, lines[3].split())
    assert rows == 130_831 and columns > 0
    oracles = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert set(oracles) >= BUILTIN_ORACLES, oracles
    for name in BUILTIN_ORACLES:
        module, file = oracles[name]
        assert module.startswith(f"{ORACLES_PACKAGE}."), (name, module)
        assert file.startswith(f"{prefix}/bodisc/builtin_oracles/"), (name, file)

    generic = _run([str(python), "-c", "import oracles"], empty, env)
    assert generic.returncode != 0
    assert "ModuleNotFoundError: No module named 'oracles'" in generic.stderr
