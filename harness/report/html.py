"""The leaderboard as one static HTML page: opens from disk with no server, sorts by any column, and
links every number to the run records behind it (relative links, so the folder can be copied whole)."""
from __future__ import annotations

import html

from harness.report.leaderboard import Board, cost_cells, task_emphasis
from harness.report.tables import PAGE_STYLE

GROUP_NAMES = {"temporal": "temporally-heavy tasks", "spatial": "spatially-heavy tasks", "": "other tasks"}

# Sorting is a dozen lines of plain JavaScript: a click on a header orders the rows by that column's
# data-v values (numbers when they parse, text otherwise); a second click reverses.
SORT_JS = """
document.querySelectorAll('table.board th.sort').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = +th.dataset.col;
    var dir = th.dataset.dir === 'desc' ? 1 : -1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    var key = function (tr) { var v = tr.children[col].dataset.v; var n = parseFloat(v);
      return isNaN(n) ? (v || '') : n; };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      if (x === '' || y === '') return x === '' ? 1 : -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir; });
    rows.forEach(function (tr) { body.appendChild(tr); });
  });
});
"""


def page(board: Board, href: str = "runs/", title: str = "Leaderboard") -> str:
    e = html.escape
    cols = list(board.mean.columns)
    groups: list[tuple[str, int]] = []
    for c in cols:
        g = task_emphasis(c)
        groups = groups[:-1] + [(g, groups[-1][1] + 1)] if groups and groups[-1][0] == g else [*groups, (g, 1)]
    heads = ["profile", "method", *cols, "seeds", "pre-train min", "clips/s", "peak GB", "device", "notes"]
    out = [f"<p>Metric <code>{e(board.metric)}</code>: mean over seeds ± the 95% interval over seeds (Student's t); "
           "a one-seed cell shows the run's bootstrap interval over test videos in brackets. The small numbers "
           "link to the run records. Click a header to sort.</p>", '<table class="board">', "<thead>",
           '<tr><th colspan="2"></th>' + "".join(f'<th colspan="{k}">{e(GROUP_NAMES[g])}</th>' for g, k in groups)
           + '<th></th><th colspan="4">pre-training cost</th><th></th></tr>',
           "<tr>" + "".join(f'<th class="sort" data-col="{i}">{e(h)}</th>' for i, h in enumerate(heads)) + "</tr>",
           "</thead>", "<tbody>"]
    for (prof, row) in board.mean.index:
        at = (prof, row)
        cells = [f'<td data-v="{e(prof)}">{e(prof)}</td>', f'<th data-v="{e(row)}">{e(row)}</th>']
        for c in cols:
            v = board.mean.loc[at, c]
            if v != v:
                cells.append('<td data-v=""></td>')
                continue
            ci, lo, hi = board.ci95.loc[at, c], board.boot_lo.loc[at, c], board.boot_hi.loc[at, c]
            spread = f" ± {ci:.1f}" if ci == ci else f" [{lo:.1f}, {hi:.1f}]" if lo == lo else ""
            ids = board.ids.loc[at, c] if board.ids is not None else []
            links = " ".join(f'<a href="{e(href + rid)}.json" title="{e(rid)}">{k}</a>'
                             for k, rid in enumerate(ids if isinstance(ids, list) else [], 1))
            rank = board.ranks.loc[at, c] if board.ranks is not None else float("nan")
            mark = f'<span class="rank">#{int(rank)}</span> ' if rank == rank else ""
            cells.append(f'<td data-v="{v:.4f}">{mark}<b>{v:.1f}</b>{e(spread)} <sup>{links}</sup></td>')
        cells.append(f'<td data-v="{int(board.seeds.loc[at])}">{int(board.seeds.loc[at])}</td>')
        costs = cost_cells(board.costs.loc[at]) if board.costs is not None else ["", "", "", ""]
        cells += [f'<td data-v="{e(x)}">{e(x)}</td>' for x in costs]
        note = board.notes.loc[at]
        cells.append(f'<td data-v="{e(note)}">{e(note)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    style = PAGE_STYLE + "table.board td{text-align:right}"
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{e(title)}</title><style>{style}</style>"
            f"</head><body><h1>{e(title)}</h1>\n" + "\n".join(out)
            + f"\n<script>{SORT_JS}</script>\n</body></html>\n")
