"""`bench tables`: the papers' tables in their layout, the paper's number beside ours in every cell.

A cell shows the paper's number, ours (mean over seeds ± their standard deviation, the seed count, and
the 95% interval: over seeds with two or more, else the run's bootstrap interval over test videos) and,
under the `paper` profile, the difference ours − paper. Under `embedded`/`ci` the tasks stand in for the
papers' data (`harness.report.paper`), so the difference is left out: the numbers measure different things.
Cells without a matching record say `no run`; cells the harness cannot run say `n/a` (the CSV says why).
Released checkpoints scored with `pretrained` appear under each table as extra rows.
"""
from __future__ import annotations

import html
import io

from harness.report import paper
from harness.report.compare import RANK_NOTE
from harness.report.filled import Cell, Rendered

# ----------------------------------------------------------------------------- formats


def _num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _ours_text(o: paper.Ours | None, stand_in_missing: str = "no run") -> str:
    if o is None:
        return stand_in_missing
    text = _num(o.mean) + (f" ± {o.std:.1f}" if o.std is not None else "")
    if o.ci:
        text += f" [{o.ci[0]:.1f}, {o.ci[1]:.1f}]"
    return text + f" (n={o.n})"


MARKS = ("*", "†", "‡", "§")


def _marks(r: Rendered) -> dict[str, str]:
    """A footnote mark per distinct note of the paper's cells."""
    notes = list(dict.fromkeys(c.reference.note for line in r.cells for c in line if c.reference and c.reference.note))
    return {n: MARKS[k % len(MARKS)] * (k // len(MARKS) + 1) for k, n in enumerate(notes)}


def _paper_text(c: Cell, marks: dict[str, str]) -> str:
    if c.reference is None:
        return "–"
    mark = marks.get(c.reference.note, "")
    return (_num(c.paper_value) if c.paper_value is not None else "–") + mark


def _column_heads(t: paper.Table) -> list[str]:
    return [f"{c.group} {c.label}".strip() for c in t.columns]


def _notes(r: Rendered) -> list[str]:
    rank = [RANK_NOTE + " Seeds per cell: its n."] if r.ranked else []
    return [f"{mark} {note}" for note, mark in _marks(r).items()] + rank


def _rank_text(r: Rendered, i: int, j: int) -> str:
    k = r.rank(i, j)
    return "" if k is None else f"#{k} "


def markdown(r: Rendered) -> str:
    t = r.table
    protocols = paper.load_definitions().stand_in.protocols
    where = (f"ours: profile `{r.profile}`" + (", the embedded tasks standing in for the papers' data "
                                               "(appearance for K400/UCF101/HMDB51, motion for SSv2/Diving48); "
                                               + ", ".join(f"`{a}` columns are scored with `{b}`"
                                                           for a, b in protocols.items())
                                               if r.stand_in else ""))
    lines = [f"### {t.title}", "", f"{t.caption} Source: {t.source}. {where}.", "",
             "Each cell: paper / ours, mean ± std over seeds [95% CI] (n = seeds)"
             + ("" if r.stand_in else " / Δ = ours − paper") + ".", ""]
    marks = _marks(r)
    heads = ["", *(h.replace("|", "\\|") for h in _column_heads(t))]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for i, line in enumerate(r.cells):
        cells = []
        for j, c in enumerate(line):
            ours = _rank_text(r, i, j) + _ours_text(c.ours, "n/a" if c.why_not else "no run")
            d = r.diff(c)
            cells.append(f"{_paper_text(c, marks)} / {ours}" + (f" / {d:+.1f}" if d is not None else ""))
        lines.append("| " + " | ".join([line[0].row.replace("|", "\\|"), *cells]) + " |")
    for label, vals in r.released:
        lines.append("| " + " | ".join([f"released: {label}", *(f"– / {_ours_text(v, '')}" if v else "" for v in vals)])
                     + " |")
    notes = _notes(r)
    if notes:
        lines += [""] + [n + "  " for n in notes[:-1]] + notes[-1:]
    return "\n".join(lines)


CSV_HEAD = ("paper,table,profile,row,group,column,paper_value,paper_note,ours_mean,ours_std,ci_low,ci_high,ci_kind,"
            "seeds,difference,rank,status,command,records")


def csv_text(r: Rendered) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEAD.split(","))
    for i, line in enumerate(r.cells):
        for j, c in enumerate(line):
            o, rank = c.ours, r.rank(i, j)
            w.writerow([r.table.paper, r.table.name, r.profile, c.row, c.group, c.column,
                        _num(c.paper_value, 2) if c.paper_value is not None else "",
                        c.reference.note if c.reference else "no number in the paper",
                        _num(o.mean, 3) if o else "", _num(o.std, 3) if o and o.std is not None else "",
                        _num(o.ci[0], 3) if o and o.ci else "", _num(o.ci[1], 3) if o and o.ci else "",
                        o.ci_kind if o else "", o.n if o else 0, _num(r.diff(c), 3) if r.diff(c) is not None else "",
                        "" if rank is None else rank, c.status,
                        f"bench run {c.experiment.describe()} --profile {r.profile}" if c.experiment else "",
                        " ".join(o.records) if o else ""])
    return buf.getvalue()


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("†", r"$\dagger$"), ("‡", r"$\ddagger$"), ("%", r"\%"),
                 ("_", r"\_"), ("#", r"\#"), ("ρ", r"$\rho$"), ("|", r"$|$"),
                 ("±", r"$\pm$"), ("−", "-"), ("Δ", r"$\Delta$")):
        s = s.replace(a, b)
    return s


def tex(r: Rendered) -> str:
    t = r.table
    n = len(t.columns)
    out = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "c" * n + "}", r"\toprule"]
    groups, marks = _spans(t), _marks(r)
    if any(g for g, _ in groups):
        out.append(" & " + " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{_tex_escape(g)}}}" for g, k in groups) + r" \\")
    out.append(" & " + " & ".join(_tex_escape(c.label) for c in t.columns) + r" \\")
    out.append(r"\midrule")
    for line in r.cells:
        cells = []
        for c in line:
            ours = f"{c.ours.mean:.1f}" + (f"$\\pm${c.ours.std:.1f}" if c.ours and c.ours.std is not None else "") \
                if c.ours else ("n/a" if c.why_not else "--")
            cells.append(f"{_paper_text(c, marks).replace('–', '--')} / {ours}")
        out.append(_tex_escape(line[0].row) + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{{_tex_escape(t.title)}. {_tex_escape(t.caption)} Paper / ours (profile {_tex_escape(r.profile)}).}}",
            rf"\label{{tab:{t.paper}-{t.name}}}", r"\end{table}"]
    return "\n".join(out)


def _spans(t: paper.Table) -> list[tuple[str, int]]:
    spans: list[tuple[str, int]] = []
    for c in t.columns:
        if spans and spans[-1][0] == c.group:
            spans[-1] = (c.group, spans[-1][1] + 1)
        else:
            spans.append((c.group, 1))
    return spans


def html_table(r: Rendered, record_href: str = "runs/") -> str:
    """One table as an HTML fragment; each of our numbers links to its run records."""
    t = r.table
    e = html.escape
    out = [f'<h2 id="{e(t.paper)}-{e(t.name)}">{e(t.title)}</h2>',
           f"<p>{e(t.caption)} <i>{e(t.source)}</i>. Ours: profile <code>{e(r.profile)}</code>"
           + (" (embedded tasks standing in for the papers' data; "
              + ", ".join(f"<code>{e(a)}</code> columns scored with <code>{e(b)}</code>"
                          for a, b in paper.load_definitions().stand_in.protocols.items()) + ")"
              if r.stand_in else "") + ".</p>",
           '<table class="paper">']
    groups, marks = _spans(t), _marks(r)
    if any(g for g, _ in groups):
        out.append("<tr><th></th>" + "".join(f'<th colspan="{k}">{e(g)}</th>' for g, k in groups) + "</tr>")
    out.append("<tr><th></th>" + "".join(f"<th>{e(c.label)}</th>" for c in t.columns) + "</tr>")
    for i, line in enumerate(r.cells):
        cells = []
        for j, c in enumerate(line):
            body = f'<span class="ref">{e(_paper_text(c, marks))}</span>'
            if c.ours:
                title = e(_ours_text(c.ours) + (f"; {c.ours.ci_kind} interval" if c.ours.ci_kind else ""))
                links = " ".join(f'<a href="{e(record_href + rid)}.json">{k}</a>' for k, rid in enumerate(c.ours.records, 1))
                body += f'<br>{_rank_text(r, i, j)}<b title="{title}">{c.ours.mean:.1f}</b>' + (
                    f"±{c.ours.std:.1f}" if c.ours.std is not None else "") + f' <sup>{links}</sup>'
                d = r.diff(c)
                if d is not None:
                    body += f' <span class="{"up" if d >= 0 else "down"}">{d:+.1f}</span>'
            else:
                body += f'<br><span class="missing" title="{e(c.why_not)}">{"n/a" if c.why_not else "no run"}</span>'
            cells.append(f"<td>{body}</td>")
        out.append(f"<tr><th>{e(line[0].row)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    notes = _notes(r)
    if notes:
        out.append("<p class=\"notes\">" + "<br>".join(e(n) for n in notes) + "</p>")
    return "\n".join(out)


PAGE_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:center}th{background:#f3f3f3}.ref{color:#666}
.up{color:#070}.down{color:#a00}.missing{color:#999}sup a{font-size:80%}th.sort{cursor:pointer}
th.sort:after{content:" \\2195";color:#aaa}"""


def html_page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def render(r: Rendered, fmt: str) -> str:
    if fmt in ("md", "markdown"):
        return markdown(r)
    if fmt == "csv":
        return csv_text(r)
    if fmt == "tex":
        return tex(r)
    if fmt == "html":
        return html_table(r)
    raise paper.ConfigError(f"--format {fmt!r}: one of md, csv, tex, html")
