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
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        for i, link in enumerate(args.links, 1):
            page.goto(link, wait_until="load")
            # the UI polls (auto-refresh), so the network never idles: wait for the charts
            page.wait_for_timeout(12000)
            shot = args.out / f"link{i}.png"
            page.screenshot(path=str(shot), full_page=False)
            lines = page.inner_text("body").splitlines()
            sections = [f"{lines[j - 1]} {lines[j]}" for j in range(1, len(lines))
                        if re.fullmatch(r"\(\d+\)", lines[j].strip())]
            print(f"link {i}: {link}")
            print(f"  screenshot: {shot}")
            print(f"  model-training view selected: "
                  f"{page.locator('text=Model training').count() > 0}")
            print(f"  chart sections: {', '.join(sections) or 'none'}")
            print(f"  images shown: {page.locator('img').count()}")
        browser.close()


if __name__ == "__main__":
    main()
