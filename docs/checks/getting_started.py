"""Follow docs/getting-started.md as a newcomer would, with a browser, and record what shows.

A documented check, not a test (it installs the project and needs a browser). Run it in
a fresh clone, with no ``.venv`` yet::

    python docs/checks/getting_started.py --out docs/results/getting_started

It takes the commands from the page itself, so the check follows the page as it is:
the set-up-and-go command (install, then the dipole campaign), the ``mlflow ui``
command (started in the background), the links the campaign printed (opened in
headless Chromium, as ``docs/checks/mlflow_ui.py`` does) and the report command, whose
``report.html`` it opens too. It writes ``check.txt`` (each command, its exit status and
seconds, the campaign's summary, what each page showed) and a screenshot per page.
It needs ``playwright`` (``pip install playwright``, in any environment) and Debian's
``chromium`` (``--chromium PATH`` names another). Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from mlflow_ui import look  # noqa: E402

PAGE = Path("docs/getting-started.md")


def page_commands(page: Path = PAGE) -> dict[str, str]:
    """The page's commands by role: ``campaign``, ``ui`` and ``report``.

    Raises:
        SystemExit: If the page lacks one of them (the page changed; update the check).
    """
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    found = {"campaign": next((b for b in blocks if "bodisc campaign" in b), None),
             "ui": next((b for b in blocks if re.search(r"mlflow ui\b", b)), None),
             "report": next((b for b in blocks if "bodisc report" in b), None)}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise SystemExit(f"{page}: no {', '.join(missing)} command in a bash block")
    return found  # type: ignore[return-value]


def run(command: str, log: list[str]) -> tuple[int, str, str]:
    """Run ``command`` in bash as printed; log it, its status and seconds.

    Returns:
        The exit status, standard output and standard error.
    """
    start = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    log += [f"$ {command}", f"  exit status {proc.returncode} in "
            f"{time.monotonic() - start:.0f} s"]
    return proc.returncode, proc.stdout, proc.stderr


def wait_for(url: str, seconds: float = 180) -> bool:
    """Whether ``url`` answers within ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except OSError:
            time.sleep(2)
    return False


def main() -> int:
    """Run the page's commands, open what they point to and write ``check.txt``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("getting-started-check"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    commands = page_commands()
    log: list[str] = [f"following {PAGE}"]
    try:
        ok = follow(commands, args, log, sync_playwright)
    except Exception as exc:  # a check reports what broke, with what it saw until then
        log.append(f"stopped: {type(exc).__name__}: {exc}")
        ok = False
    (args.out / "check.txt").write_text("\n".join(log) + "\n")
    print("\n".join(log))
    return 0 if ok else 1


def links_in(output: str) -> list[str]:
    """The MLflow UI links a command printed, in order, each once."""
    return list(dict.fromkeys(re.findall(r"https?://127\.0\.0\.1:\d+/\S+", output)))


def report_file(output: str) -> Path | None:
    """The ``report.html`` the report command says it wrote (a file, not a link)."""
    for token in output.split():
        if token.endswith("report.html") and "://" not in token and Path(token).is_file():
            return Path(token).resolve()
    return None


def follow(commands: dict[str, str], args: argparse.Namespace, log: list[str],
           sync_playwright: Any) -> bool:
    """Run the campaign, serve the UI, run the report, open every link and the report."""
    status, output, errors = run(commands["campaign"], log)
    start = output.rfind("\n", 0, output.rfind("best molecules")) + 1
    log += ["  " + line for line in output[start:].splitlines()[:40]]  # its summary
    if status != 0:
        log += ["  " + line for line in errors.splitlines()[-20:]]
    links = links_in(output)
    ok = status == 0 and bool(links)
    log.append(f"$ {commands['ui']} &")
    ui = subprocess.Popen(["bash", "-c", commands["ui"]], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = re.search(r"--port\s+(\d+)", commands["ui"])  # mlflow's default: 5000
        up = wait_for(f"http://127.0.0.1:{port.group(1) if port else 5000}/health")
        log.append(f"  serving: {up}")
        report_status, report_output, _ = run(commands["report"], log)
        html = report_file(report_output)
        log.append(f"  wrote: {html.relative_to(Path.cwd()) if html else 'no report.html'}")
        ok &= up and report_status == 0 and html is not None
        links += [x for x in links_in(report_output) if x not in links]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium,
                                         args=["--no-sandbox"])
            for i, link in enumerate(links, 1):
                log.append(f"link {i} (printed by bodisc): {link}")
                lines, page = look(browser, link, args.out / f"link{i}.png")
                log += lines
                page.close()
            if html:
                log.append(f"report: {html.relative_to(Path.cwd())} in the browser")
                lines, page = look(browser, html.as_uri(), args.out / "report.png",
                                   wait_ms=2000)
                log += lines
                drawn = page.evaluate(
                    "Array.from(document.images).filter(i => i.naturalWidth > 0).length")
                heads = page.evaluate(
                    "Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
                log += [f"  images drawn: {drawn}", f"  sections: {', '.join(heads)}"]
                ok &= drawn > 0
            browser.close()
    finally:  # stop the UI and wait, so that a next run does not find this one serving
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
    log.append(f"all steps worked: {ok}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
