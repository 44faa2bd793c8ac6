"""A paper table filled from run records: per cell the paper's number, the experiment that stands for it
under a profile (or why none can) and ours; released checkpoints as extra rows. The renderers
(`report.tables`) and the plots (`report.plots`) read these."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.report import paper
from harness.report.compare import tie_ranks


@dataclass
class Cell:
    row: str
    group: str
    column: str
    reference: paper.Reference | None
    experiment: paper.Experiment | None
    why_not: str  # why the harness cannot run it ("" when it can)
    ours: paper.Ours | None

    @property
    def paper_value(self) -> float | None:
        return self.reference.value if self.reference else None

    @property
    def status(self) -> str:
        return "ok" if self.ours else f"n/a: {self.why_not}" if self.why_not else "no run"


@dataclass
class Rendered:
    table: paper.Table
    profile: str
    cells: list[list[Cell]]  # rows x columns
    released: list[tuple[str, list[paper.Ours | None]]]  # checkpoint label, one entry per column
    ranks: list[list[int | None]] | None = None  # rows x columns, `compare.tie_ranks` within each column

    def rank(self, i: int, j: int) -> int | None:
        return self.ranks[i][j] if self.ranks else None

    @property
    def ranked(self) -> bool:
        return any(k is not None for line in self.ranks or [] for k in line)

    @property
    def stand_in(self) -> bool:
        return self.profile in paper.load_definitions().stand_in.profiles

    def diff(self, c: Cell) -> float | None:
        if self.stand_in or c.ours is None or c.paper_value is None:
            return None
        return c.ours.mean - c.paper_value


def fill(table: paper.Table, records: list[dict], profile: str, config_path: str | None = None,
         runs_dir: Path | None = None) -> Rendered:
    """The table's cells from `records`; with `runs_dir` (where the records' per-video outputs are) each
    column's cells are also ranked with ties."""
    defs = paper.load_definitions()
    rows = []
    for i, row in enumerate(table.rows):
        line = []
        for j, col in enumerate(table.columns):
            exp = paper.experiment(defs, table, i, j, profile, config_path)
            why = exp.reason if isinstance(exp, paper.NotRunnable) else ""
            exp = None if why else exp
            line.append(Cell(row.label, col.group, col.label, defs.reference(table, i, j), exp, why,
                             paper.ours(records, profile, exp, config_path) if exp else None))
        rows.append(line)
    done = Rendered(table, profile, rows, released(rows, records, profile, config_path))
    if runs_dir is not None:
        done.ranks = rank_cells(rows, {r.get("id"): r for r in records}, runs_dir)
    return done


def rank_cells(rows: list[list[Cell]], by_id: dict[str, dict], runs_dir: Path) -> list[list[int | None]]:
    """Each cell's rank among the filled cells of its column (rows of one column share task and metric)."""
    ranks: list[list[int | None]] = [[None] * len(line) for line in rows]
    for j in range(len(rows[0]) if rows else 0):
        filled = {i: line[j] for i, line in enumerate(rows)
                  if line[j].ours and line[j].experiment and line[j].experiment.reads == "result"}
        if len(filled) < 2:
            continue
        exp = next(iter(filled.values())).experiment
        cells = {str(i): [by_id[rid] for rid in dict.fromkeys(c.ours.records) if rid in by_id]
                 for i, c in filled.items()}
        try:
            found = tie_ranks(cells, exp.task, exp.metric, runs_dir)
        except ConfigError:  # a metric without a per-video form (MedR): not ranked
            continue
        for i, k in found.items():
            ranks[int(i)][j] = k
    return ranks


def released(rows: list[list[Cell]], records: list[dict], profile: str, config_path: str | None) -> list:
    """Released checkpoints (`pretrained` records of this profile), one row per file content, filled in the
    columns whose task they were scored on the way the column measures it."""
    found: dict[str, list[list[dict]]] = {}
    columns = [next((r[j].experiment for r in rows if r[j].experiment), None) for j in range(len(rows[0]) if rows else 0)]
    for j, exp in enumerate(columns):
        for r in records:
            if exp is None or r.get("method") != "pretrained" or not paper.same_measurement(r, profile, exp, config_path):
                continue
            sha = r["identity"]["encoder"].get("methods.pretrained.sha256", "?")
            name = Path(r.get("config", {}).get("methods", {}).get("pretrained", {}).get("path", "?")).name
            found.setdefault(f"{name} ({sha[:8]})", [[] for _ in columns])[j].append(r)
    return [(label, [paper.ours(recs, profile, paper.Experiment("pretrained", exp.protocol, (), exp.task, exp.metric),
                                config_path, check=False) if recs else None for recs, exp in zip(per_col, columns)])
            for label, per_col in found.items()]
