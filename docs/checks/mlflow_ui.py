"""Open the MLflow links that bodisc prints in headless Chromium and take screenshots.

A documented check, not a test (it needs a browser): run a campaign, start ``mlflow ui``
as bodisc says, then::

    python docs/checks/mlflow_ui.py RUN_LINK [EXPERIMENT_LINK] --out FOLDER

It needs ``playwright`` (``pip install playwright``) and a Chromium (Debian's
``chromium`` package; ``--chromium PATH`` names another). It waits until the charts
have drawn, saves a screenshot per link and prints what the page shows: the view
(GenAI or model training), the chart sections (``molecules (1)`` is the best
molecules' image chart) and how many images the page shows.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any


def look(browser: Any, link: str, shot: Path, wait_ms: int = 12000) -> tuple[list[str], Any]:
    """Open ``link`` in a new tab, wait for it to draw, save ``shot``; say what it shows.

    A new tab per link, as a person clicking printed links gets: MLflow's links differ
    only after ``#``, and in one tab its artifact view keeps showing the artifact opened
    before.

    Args:
        browser: A playwright browser.
        link: The address to open (``http://`` or ``file://``).
        shot: Where the screenshot goes.
        wait_ms: How long to let the page draw; MLflow's UI polls, so the network never
            idles and a fixed wait is what works.

    Returns:
        Lines of text (the screenshot, whether MLflow's model-training view is selected,
        the chart sections, a heading followed by its ``(count)``, and the images shown)
        and the tab, for the caller to look further and close.
    """
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    page.goto(link, wait_until="load")
    page.wait_for_timeout(wait_ms)
    page.screenshot(path=str(shot), full_page=False)
    lines = page.inner_text("body").splitlines()
    sections = [f"{lines[j - 1]} {lines[j]}" for j in range(1, len(lines))
                if re.fullmatch(r"\(\d+\)", lines[j].strip())]
    return [f"  screenshot: {shot}",
            f"  model-training view selected: "
            f"{page.locator('text=Model training').count() > 0}",
            f"  chart sections: {', '.join(sections) or 'none'}",
            f"  images shown: {page.locator('img').count()}"], page


def main() -> None:
    """Open each link, wait for the charts, save a screenshot and print what shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("links", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("mlflow-ui-check"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for i, link in enumerate(args.links, 1):
            print(f"link {i}: {link}")
            lines, page = look(browser, link, args.out / f"link{i}.png")
            print("\n".join(lines))
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
