"""Open an HTML page of the harness (the leaderboard, or `bench tables --out`'s index.html) in headless
Chromium, screenshot it, sort by a column and follow a record link. Needs Playwright (not a dependency
of the harness: `pip install playwright`) and a Chromium (Debian's `chromium`):

    python tools/html_check.py results/leaderboard.html --shot /tmp/board.png [--sort-column 3]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--shot", type=Path, required=True, help="where the screenshot goes (PNG)")
    ap.add_argument("--sort-column", type=int, default=2, help="header index to click (0-based)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.goto(a.page.resolve().as_uri())
        rows = page.locator("table.board tbody tr")
        print(f"rows: {rows.count()}")
        if rows.count():
            def column(k: int) -> list[str]:
                return page.eval_on_selector_all(
                    "table.board tbody tr", f"rs => rs.map(r => r.children[{k}].dataset.v)")
            before = column(a.sort_column)
            page.locator(f"th.sort[data-col='{a.sort_column}']").click()
            first = column(a.sort_column)
            page.locator(f"th.sort[data-col='{a.sort_column}']").click()
            second = column(a.sort_column)
            nums = [float(v) for v in first if v not in ("", None)]
            print(f"column {a.sort_column} before: {before}")
            print(f"after one click (descending): {first}; sorted: {nums == sorted(nums, reverse=True)}")
            print(f"after two clicks (ascending): {second}")
        page.screenshot(path=str(a.shot), full_page=True)
        print(f"screenshot: {a.shot}")
        link = page.locator("sup a").first
        if link.count():
            href = link.get_attribute("href")
            link.click()
            page.wait_for_load_state()
            body = page.locator("body").inner_text()
            rec = json.loads(body)
            print(f"followed {href}: record {rec.get('id')} ({rec.get('method')} / {rec.get('protocol')}, seed "
                  f"{rec.get('seed')})")
        browser.close()


if __name__ == "__main__":
    main()
