"""`bench tables --out DIR`: every filled table in md, csv and tex, one HTML page that links the records,
and the plots."""
from __future__ import annotations

import os
from pathlib import Path

from harness.report import plots
from harness.report.filled import Rendered
from harness.report.tables import html_page, html_table, render
from harness.storage import atomic_write


def write_all(done: list[Rendered], out_dir: Path, runs_dir: Path) -> list[Path]:
    """Every table in md, csv and tex, one HTML page linking the records, and the plots; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for r in done:
        for fmt, ext in (("md", "md"), ("csv", "csv"), ("tex", "tex")):
            path = out_dir / f"{r.table.paper}-{r.table.name}.{ext}"
            text = render(r, fmt)
            atomic_write(path, lambda f, text=text: f.write(text + "\n"))
            written.append(path)
        written += plots.accuracy_vs_selector(r, out_dir) + plots.accuracy_vs_cost(r, out_dir)
    href = os.path.relpath(runs_dir, out_dir).replace(os.sep, "/") + "/"
    page = html_page(f"Paper tables, profile {done[0].profile}" if done else "Paper tables",
                     "\n".join(html_table(r, href) for r in done))
    path = out_dir / "index.html"
    atomic_write(path, lambda f: f.write(page))
    return [*written, path]
