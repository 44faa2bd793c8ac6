"""The papers' tables as data: reference numbers, table definitions, and which runs fill which cell.

`results/paper/reference.csv` holds one line per cell the papers report; `results/paper/tables.toml`
defines each table (rows, columns, fixed selectors, title, caption) and the suites that run its
experiments. A cell's selectors name one reference line and, for a profile, one *experiment*: a
method, a protocol, the `--set` overrides that give the selected ρ / epochs / data / backbone, and the
task and metric to read. Records fill a cell only when they are that experiment exactly: same profile,
method, protocol, the encoder and protocol identity that `load_config` gives for it today, and today's
code versions — so a record of another profile never fills a `paper` table, and a stale one never
mixes in. Nothing here imports torch.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness import catalog, code_version
from harness.config import load_config
from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"
SELECTORS = ("method", "pretrain_data", "backbone", "frames", "rho", "epochs", "variant", "protocol", "dataset",
             "metric")
PAPERS = {"feichtenhofer2021": "A Large-Scale Study on Unsupervised Spatiotemporal Representation Learning",
          "tan2021vimpac": "VIMPAC: Video Pre-Training via Masked Token Prediction and Contrastive Learning",
          "akbari2021vatt": "VATT: Transformers for Multimodal Self-Supervised Learning from Raw Video, Audio and Text"}
DESCRIPTIVE_VARIANTS = ("", "modality=V")  # a variant that names no setting: the harness's encoders see video


# ----------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class Reference:
    """One line of reference.csv: a number the paper reports (None where it reports none, with a note)."""

    paper: str
    table: str
    keys: tuple[tuple[str, str], ...]  # the selectors, as text ("" where the paper leaves one open)
    value: float | None
    note: str



@dataclass
class Line:
    """A row or a column: its label and the selectors it sets."""

    label: str
    keys: dict[str, Any]
    group: str = ""  # columns: a header spanning consecutive columns
    run: str = ""  # rows: another method that stands for this one (training from scratch: random_init)
    run_protocol: dict[str, str] = field(default_factory=dict)  # rows: the protocol that runs in place of another
    sets: list[str] = field(default_factory=list)  # rows with `run`: the settings that run stands with


@dataclass
class Table:
    paper: str
    name: str
    title: str
    caption: str
    source: str
    fixed: dict[str, Any]
    rows: list[Line]
    columns: list[Line]
    plot: dict[str, Any] = field(default_factory=dict)
    # profile -> `--set` overrides every cell of this table runs with under it, beyond what the selectors set:
    # the settings in which a paper ran this table and not others (the ρ study's sota table: aug+, 3 splits)
    sets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.paper}/{self.name}"

    def selectors(self, i: int, j: int) -> dict[str, str]:
        """The cell's selectors as reference.csv writes them (numbers without a trailing .0)."""
        merged = {**self.fixed, **self.rows[i].keys, **self.columns[j].keys}
        return {k: _text(merged.get(k, "")) for k in SELECTORS}


@dataclass
class StandIn:
    """How a small profile stands in for the papers' data (see the [stand_in] section of tables.toml)."""

    profiles: list[str]
    tasks: dict[str, str]
    protocols: dict[str, str]
    pretrain_data: list[str]
    epochs_at: int
    backbone: str  # the one encoder of the paper the profile's backbone stands for
    frames: int
    papers: dict[str, dict[str, Any]] = field(default_factory=dict)  # a paper's own `backbone`, `frames`

    def of(self, paper: str, key: str) -> Any:
        """`key` (backbone, frames) as it stands for `paper`'s tables."""
        return self.papers.get(paper, {}).get(key, getattr(self, key))


@dataclass
class Definitions:
    references: list[Reference]
    tables: list[Table]
    suites: dict[str, dict[str, Any]]
    stand_in: StandIn
    # paper -> ablation term ("mask=iid") -> `--set` overrides, or the reason it cannot run, or per kind of
    # profile ({stand_in = ..., paper = ...})
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a paper's method name (vatt_base) -> the harness method and settings that are it, per kind of profile
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, table_id: str) -> Table:
        for t in self.tables:
            if t.id == table_id:
                return t
        raise ConfigError(f"unknown table {table_id!r}; known: {', '.join(t.id for t in self.tables)}")

    def select(self, paper: str | None = None, name: str | None = None) -> list[Table]:
        """The tables of `paper` (all papers when None), or the one called `name`."""
        if paper is not None and paper not in PAPERS:
            raise ConfigError(f"--paper {paper!r}: one of {', '.join(PAPERS)}")
        out = [t for t in self.tables if paper in (None, t.paper) and name in (None, t.name)]
        if not out:
            known = sorted({t.name for t in self.tables if paper in (None, t.paper)})
            raise ConfigError(f"--table {name!r}: no such table{' in ' + paper if paper else ''}; known: "
                              f"{', '.join(known)}")
        return out

    def reference(self, table: Table, i: int, j: int) -> Reference | None:
        """The reference line of a cell; None where the paper has no number for it."""
        want = tuple(table.selectors(i, j).items())
        hits = [r for r in self.references if r.paper == table.paper and r.table == table.name and r.keys == want]
        return hits[0] if hits else None


def restrict(table: Table, only: dict[str, set[str]]) -> Table:
    """The table with only the rows and columns that hold a cell whose selectors take the given values
    (`--only rho=1,2`); the table itself when `only` is empty."""
    if not only:
        return table
    ok = [[all(table.selectors(i, j).get(k, "") in v for k, v in only.items()) for j in range(len(table.columns))]
          for i in range(len(table.rows))]
    rows = [r for i, r in enumerate(table.rows) if any(ok[i])]
    cols = [c for j, c in enumerate(table.columns) if any(line[j] for line in ok)]
    if not rows or not cols:
        raise ConfigError(f"--only leaves no cell of {table.id}")
    return dataclasses.replace(table, rows=rows, columns=cols)


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return "" if v is None else str(v)


def _line(d: dict, where: str, column: bool) -> Line:
    d = dict(d)
    label = d.pop("label", None)
    if not isinstance(label, str):
        raise ConfigError(f"{where}: needs a label")
    group, run = d.pop("group", "") if column else "", "" if column else d.pop("run", "")
    run_protocol = {} if column else d.pop("run_protocol", {})
    sets = [] if column else list(d.pop("sets", []))
    unknown = sorted(set(d) - set(SELECTORS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; selectors are {', '.join(SELECTORS)}")
    return Line(label, d, group, run, run_protocol, sets)


@lru_cache(maxsize=4)
def load_definitions(directory: Path = PAPER_DIR) -> Definitions:
    """Read and check reference.csv and tables.toml: every cell names at most one reference line."""
    refs = []
    with open(directory / "reference.csv", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                value = float(row["value"]) if row["value"] else None
            except ValueError:
                raise ConfigError(f"{directory / 'reference.csv'} line {n}: value {row['value']!r} is not a number") from None
            keys = tuple((k, _text(float(row[k])) if k in ("frames", "rho", "epochs") and row[k] else row[k])
                         for k in SELECTORS)
            refs.append(Reference(row["paper"], row["table"], keys, value, row["note"]))
    raw = tomllib.loads((directory / "tables.toml").read_text())
    tables = []
    for k, t in enumerate(raw.get("table", [])):
        where = f"tables.toml table {k + 1} ({t.get('paper')}/{t.get('name')})"
        try:
            table = Table(t["paper"], t["name"], t["title"], t["caption"], t["source"], t.get("fixed", {}),
                          [_line(r, f"{where} row {i + 1}", False) for i, r in enumerate(t["rows"])],
                          [_line(c, f"{where} column {j + 1}", True) for j, c in enumerate(t["columns"])],
                          t.get("plot", {}), t.get("sets", {}))
        except KeyError as e:
            raise ConfigError(f"{where}: missing {e.args[0]!r}") from None
        tables.append(table)
    s = raw["stand_in"]
    defs = Definitions(refs, tables, raw.get("suite", {}),
                       StandIn(s["profiles"], s["tasks"], s["protocols"], s["pretrain_data"], s["epochs_at"],
                               s["backbone"], s["frames"], s.get("papers", {})),
                       raw.get("variants", {}), raw.get("aliases", {}))
    for suite in defs.suites.values():
        for tid in suite["tables"]:
            defs.table(tid)  # raises for a suite naming an unknown table
    return defs


# ----------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class Experiment:
    """What a cell needs run under a profile: `bench run --method M --protocol P --set ...`, read at `task`.
    A pre-training column (`reads = "pretrain"`: speed, mask accuracy, a loss) reads the record's `pretrain`
    section instead, from any run of that encoder; `protocol` and `task` then name what a suite runs."""

    method: str
    protocol: str
    sets: tuple[str, ...]
    task: str
    metric: str
    reads: str = "result"

    def describe(self) -> str:
        sets = " ".join(f"--set {shlex.quote(s)}" for s in self.sets)
        return f"--method {self.method} --protocol {self.protocol}" + (f" {sets}" if sets else "")


@dataclass(frozen=True)
class NotRunnable:
    reason: str


def experiment(defs: Definitions, table: Table, i: int, j: int, profile: str,
               path: str | None = None) -> Experiment | NotRunnable:
    """The experiment that fills cell (i, j) under `profile`, or why the harness cannot run it."""
    sel = table.selectors(i, j)
    method = table.rows[i].run or sel["method"]
    stand = profile in defs.stand_in.profiles
    kind = "stand_in" if stand else "paper"
    sets = list(table.sets.get(profile, []))
    alias = defs.aliases.get(method)
    if alias:
        found = _for_profile(alias.get("sets", []), kind)
        if isinstance(found, str):
            return NotRunnable(found)
        method, sets = alias["method"], sets + found
    if method not in catalog.METHODS:
        return NotRunnable(f"no adapter for {sel['method']}")
    if table.rows[i].run:  # the run that stands for the row brings its own settings; the variant names the row
        sets += table.rows[i].sets
    elif sel["variant"] not in DESCRIPTIVE_VARIANTS:
        found = variant_sets(defs, table.paper, sel["variant"], kind)
        if isinstance(found, str):
            return NotRunnable(found)
        sets += found
    reads = "pretrain" if sel["protocol"] == "pretrain" else "result"
    if reads == "pretrain":  # read from any run of the encoder: a suite runs the profile's own protocol
        protocol = _config(profile, method, None, (), path).protocol
        task = _config(profile, method, protocol, (), path).protocol_cfg.tasks[0]
    else:
        protocol = table.rows[i].run_protocol.get(sel["protocol"], sel["protocol"])
        protocol = defs.stand_in.protocols.get(protocol, protocol) if stand else protocol
        if protocol not in catalog.PROTOCOLS:
            return NotRunnable(f"no protocol {sel['protocol']}")
        task = defs.stand_in.tasks.get(sel["dataset"], "") if stand else sel["dataset"]
        if task not in catalog.TASKS:
            return NotRunnable(f"no task for {sel['dataset']}" + (" in this profile" if stand else ""))
    base = _config(profile, method, protocol, tuple(sets), path)
    if sel["pretrain_data"] not in ("", "scratch") and base.pretrains:
        if stand and sel["pretrain_data"] not in defs.stand_in.pretrain_data:
            return NotRunnable(f"no stand-in for pre-training on {sel['pretrain_data']}")
        if not stand:
            if sel["pretrain_data"] not in catalog.DATASETS:
                return NotRunnable(f"no dataset {sel['pretrain_data']}")
            if base.pretrain.dataset != sel["pretrain_data"]:
                sets.append(f"pretrain.dataset={sel['pretrain_data']!r}")
    backbone, frames = defs.stand_in.of(table.paper, "backbone"), defs.stand_in.of(table.paper, "frames")
    if stand and ((sel["backbone"] or backbone) != backbone or int(sel["frames"] or frames) != frames):
        return NotRunnable(f"no stand-in for {sel['backbone']} {sel['frames']}f: the profile's encoder stands for "
                           f"{backbone} {frames}f only".replace("  ", " "))
    if not stand:
        if sel["backbone"] and sel["backbone"] != base.backbone.name:
            if sel["backbone"] not in catalog.BACKBONES:
                return NotRunnable(f"no backbone {sel['backbone']}")
            sets.append(f"backbone.name={sel['backbone']!r}")
        if sel["frames"] and int(sel["frames"]) != base.backbone.clip.frames:
            sets.append(f"backbone.clip.frames={sel['frames']}")
    if sel["rho"] and hasattr(base.method_cfg, "rho"):
        sets.append(f"methods.{method}.rho={sel['rho']}")
    if sel["epochs"] and base.pretrains:
        epochs = int(sel["epochs"])
        if stand:  # the profile's own schedule stands for the paper's `epochs_at`
            epochs = max(1, round(epochs * base.pretrain.epochs / defs.stand_in.epochs_at))
        if epochs != base.pretrain.epochs:
            sets.append(f"pretrain.epochs={epochs}")
    return Experiment(method, protocol, tuple(sets), task, sel["metric"], reads)


def _for_profile(value: Any, kind: str) -> list[str] | str:
    """A mapping's value for a kind of profile ("stand_in" or "paper"): overrides, or why it cannot run."""
    if isinstance(value, dict):
        if kind not in value:
            raise ConfigError(f"tables.toml: a mapping {value} names no {kind!r} entry")
        value = value[kind]
    return value if isinstance(value, str) else list(value)


def variant_sets(defs: Definitions, paper: str, variant: str, kind: str) -> list[str] | str:
    """The `--set` overrides of an ablation variant ("mask=iid;contrastive=False"), term by term from
    tables.toml's `[variants.<paper>]`; or the reason one term cannot run."""
    sets: list[str] = []
    for term in (t.strip() for t in variant.split(";") if t.strip()):
        if term not in defs.variants.get(paper, {}):
            return f"ablation setting {term} has no configuration key"
        found = _for_profile(defs.variants[paper][term], kind)
        if isinstance(found, str):
            return f"{term}: {found}"
        sets += [x for x in found if x not in sets]
    return sets


PRETRAIN_METRICS = {"speed": "clips per second of pre-training", "mask_acc": "mask-prediction accuracy (%), last logged",
                    "cl_loss": "contrastive loss, last logged"}


def pretrain_value(record: dict, metric: str) -> float | None:
    """A pre-training column's number from a record: `speed` its clips/s, any other metric the last logged
    value of that term of its loss (`term_curves`; accuracies in %); None where the record has none."""
    pre = record.get("pretrain") or {}
    if metric == "speed":
        return pre.get("clips_per_s")
    curve = (pre.get("term_curves") or {}).get(metric)
    if not curve:
        return None
    return float(curve[-1][1]) * (100 if metric.endswith("_acc") else 1)


@lru_cache(maxsize=512)
def _config(profile: str, method: str, protocol: str, sets: tuple[str, ...], path: str | None = None):
    return load_config(profile, list(sets), method=method, protocol=protocol, path=path)


def _norm(d: dict) -> str:
    return json.dumps(d, sort_keys=True, default=str)


@lru_cache(maxsize=512)
def expected(profile: str, exp: Experiment, path: str | None = None) -> tuple[str, str, str, dict]:
    """What a matching record carries: its encoder identity, its protocol identity (the cell's task
    dataset only: which other tasks a run scored does not change what it measured) and code versions."""
    cfg = _config(profile, exp.method, exp.protocol, exp.sets, path)
    dataset = catalog.TASKS.get(exp.task).dataset
    versions = {"pretrain": code_version.pretrain_version(exp.method) if cfg.pretrains else None,
                "protocol": code_version.protocol_version(exp.protocol)}
    return (_norm(cfg.encoder_identity(cfg.pretrains)), _norm(_task_view(cfg.protocol_identity(), dataset, exp.task)),
            _norm(versions), versions)


def _task_view(identity: dict, dataset: str, task: str) -> dict:
    """A protocol identity without the settings of datasets and task overrides other than the cell's."""
    out = {}
    for k, v in identity.items():
        if k.startswith("datasets.") and not k.startswith(f"datasets.{dataset}."):
            continue
        if k.startswith("task_overrides.") and not k.startswith(f"task_overrides.{task}."):
            continue
        out[k] = v
    return out


def same_measurement(record: dict, profile: str, exp: Experiment, path: str | None = None) -> bool:
    """Whether `record` scored `exp`'s task the way `exp` would, whichever encoder it scored."""
    if (record.get("profile"), record.get("protocol")) != (profile, exp.protocol):
        return False
    if not any(t.get("task") == exp.task for t in record.get("results", [])):
        return False
    _, proto, _, versions = expected(profile, exp, path)
    dataset = catalog.TASKS.get(exp.task).dataset
    return (record.get("code_version", {}).get("protocol") == versions["protocol"]
            and _norm(_task_view(record.get("identity", {}).get("protocol", {}), dataset, exp.task)) == proto)


def matches(record: dict, profile: str, exp: Experiment, path: str | None = None) -> bool:
    """Whether `record` is `exp` under `profile`: same method, encoder, measurement and code versions (a
    pre-training column: same method, encoder and pre-training code, whatever protocol scored it)."""
    if exp.reads == "pretrain":
        enc, _, _, versions = expected(profile, exp, path)
        return ((record.get("profile"), record.get("method")) == (profile, exp.method)
                and record.get("code_version", {}).get("pretrain") == versions["pretrain"]
                and _norm(record.get("identity", {}).get("encoder", {})) == enc
                and pretrain_value(record, exp.metric) is not None)
    if record.get("method") != exp.method or not same_measurement(record, profile, exp, path):
        return False
    enc, _, code, _ = expected(profile, exp, path)
    return _norm(record.get("identity", {}).get("encoder", {})) == enc and _norm(record.get("code_version", {})) == code


# ----------------------------------------------------------------------------- our numbers


@dataclass
class Ours:
    """A cell's runs: the mean over seeds, the spread (sample std) and a 95% interval.

    The interval is Student's t over seeds with two seeds or more; with one seed, the run's own
    bootstrap interval over test videos (when the protocol reports one)."""

    values: list[float]  # one per seed (re-runs of a seed averaged first)
    ci: tuple[float, float] | None
    records: list[str]  # ids of the records behind it
    pretrain_seconds: float | None  # mean over the records that pre-trained
    ci_kind: str = ""  # "seeds" or "bootstrap"

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def n(self) -> int:
        return len(self.values)


def ours(records: list[dict], profile: str, exp: Experiment, path: str | None = None,
         check: bool = True) -> Ours | None:
    """Our number for a cell from the records that match its experiment (all of `records` when not `check`)."""
    by_seed: dict[int, list[float]] = {}
    boots, ids, secs = [], [], []
    for r in records:
        if check and not matches(r, profile, exp, path):
            continue
        if exp.reads == "pretrain":
            value = pretrain_value(r, exp.metric)
            if value is not None:
                by_seed.setdefault(r["seed"], []).append(value)
                ids.append(r.get("id", ""))
            continue
        for t in r.get("results", []):
            if t.get("task") == exp.task and exp.metric in t.get("metrics", {}):
                by_seed.setdefault(r["seed"], []).append(float(t["metrics"][exp.metric]))
                if exp.metric in t.get("ci95", {}):
                    boots.append(t["ci95"][exp.metric])
                ids.append(r.get("id", ""))
                s = (r.get("pretrain") or {}).get("seconds")
                if s:
                    secs.append(float(s))
    if not by_seed:
        return None
    values = [statistics.mean(v) for _, v in sorted(by_seed.items())]
    ci, kind = None, ""
    if len(values) > 1:
        from harness.report.leaderboard import t95

        half = statistics.stdev(values) * t95(len(values)) / math.sqrt(len(values))
        ci, kind = (statistics.mean(values) - half, statistics.mean(values) + half), "seeds"
    elif boots:
        ci, kind = (statistics.mean(b[0] for b in boots), statistics.mean(b[1] for b in boots)), "bootstrap"
    return Ours(values, ci, ids, statistics.mean(secs) if secs else None, kind)
