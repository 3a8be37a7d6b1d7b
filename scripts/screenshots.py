"""Screenshots of a running `feedrank serve`'s pages for the docs: the feed explorer for one
user and moment, and the live experiment page, in Debian's chromium at 1280x800.

    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8000 --user 226 \
        --time 2021-12-29T14:30 --out docs/images
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", type=int, required=True)
    parser.add_argument("--time", required=True)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: sudo apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{args.url}/explorer?user={args.user}&time={args.time}&limit={args.limit}")
        page.wait_for_selector("article.ranking li.post")
        page.screenshot(path=args.out / "explorer.png")
        page.goto(f"{args.url}/experiment")
        page.wait_for_selector("#groups tbody tr")
        page.screenshot(path=args.out / "experiment.png", full_page=True)
        browser.close()
    print(f"wrote {args.out / 'explorer.png'} and {args.out / 'experiment.png'}")


if __name__ == "__main__":
    main()
