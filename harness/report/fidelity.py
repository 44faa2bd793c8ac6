"""The papers' settings against the `paper` profile: `results/paper/settings.toml` lists, per paper, every
setting that shapes a number of its tables with its source; each is resolved from the `paper` profile for
the run it belongs to and compared. `docs/fidelity.md` is rendered from the same file, so the document and
the check cannot drift apart.

    python -m harness.report.fidelity            # list the mismatches (exit 1 when there are any)
    python -m harness.report.fidelity --write docs/fidelity.md
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.build import tomllib
from harness.report.paper import PAPER_DIR, _config, load_definitions

SETTINGS_PATH = PAPER_DIR / "settings.toml"
PAPER_NAMES = {"feichtenhofer2021": "ρ study (Feichtenhofer et al., CVPR 2021)", "tan2021vimpac": "VIMPAC (Tan et al. 2021)",
               "akbari2021vatt": "VATT (Akbari et al., NeurIPS 2021)", "lei2021clipbert": "ClipBERT (Lei et al., CVPR 2021)"}


@dataclass(frozen=True)
class Setting:
    """One setting as a paper states it, and where in the `paper` profile the harness holds it."""

    paper: str
    key: str  # a configuration path, e.g. pretrain.lr or protocols.finetune.dropout
    value: Any
    source: str
    runs: tuple[str, ...]  # "method/protocol" whose resolved configuration holds it
    tables: str = ""
    task: str = ""  # a task's own setting (task_overrides)
    table: str = ""  # the table whose `sets` the runs take (tables.toml)
    unit: str = ""
    deviation: str = ""  # why the harness departs on purpose ("" when it follows the paper)
    harness: Any = None  # the harness's value of a deviation, checked when given

    @property
    def expected(self) -> Any:
        """What the profile must hold: the paper's value, or the declared deviation's."""
        return self.harness if self.deviation else self.value


def load_settings(path: Path = SETTINGS_PATH) -> list[Setting]:
    out = []
    for s in tomllib.loads(Path(path).read_text())["setting"]:
        s = dict(s)
        s["runs"] = tuple(s.pop("run").split())
        out.append(Setting(**s))
    return out


def lookup(setting: Setting, run: str) -> Any:
    """The value the `paper` profile gives `setting.key` in `run`."""
    method, protocol = run.split("/")
    sets = ()
    if setting.table:
        table = next(t for t in load_definitions().tables if t.paper == setting.paper and t.name == setting.table)
        sets = tuple(table.sets.get("paper", []))
    cfg = _config("paper", method, protocol, sets)
    if setting.task:
        section, name, field = setting.key.split(".", 2)
        return getattr(cfg.task_protocol_cfg(setting.task, name), field)
    node: Any = cfg.to_dict()
    for part in setting.key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{setting.key} is not a setting of {run} under the paper profile")
        node = node[part]
    return node


def same(a: Any, b: Any) -> bool:
    """Equal values, numbers compared as numbers (256 and 256.0) and lists element by element."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def mismatches(settings: list[Setting] | None = None) -> list[str]:
    """One line per (setting, run) whose profile value is not the expected one."""
    out = []
    for s in settings if settings is not None else load_settings():
        if s.expected is None or s.expected == "":
            continue  # a deviation described in words, with no value of the harness's to hold
        for run in s.runs:
            got = lookup(s, run)
            if not same(got, s.expected):
                where = f" for task {s.task}" if s.task else f" in table {s.table}" if s.table else ""
                out.append(f"{s.paper}: {s.key}{where} of {run} is {got!r}, the paper's settings say "
                           f"{s.expected!r} ({'deviation: ' + s.deviation if s.deviation else s.source})")
    return out


def _text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_text(x) for x in v) + "]"
    return str(v)


def render(settings: list[Setting] | None = None) -> str:
    """docs/fidelity.md: per paper, each setting with the paper's value, the harness's and the source."""
    settings = settings if settings is not None else load_settings()
    lines = ["# Fidelity: the `paper` profile, setting by setting", "",
             "Rendered from `results/paper/settings.toml` by `python -m harness.report.fidelity --write "
             "docs/fidelity.md`; `tests/test_paper_settings.py` resolves the `paper` profile for every entry and "
             "fails on any value that differs from the paper's (or from a declared deviation's). A row marked "
             "**deviation** departs on purpose, for the reason given; [deviations.md](deviations.md) has their "
             "expected effects.", ""]
    for paper in dict.fromkeys(s.paper for s in settings):
        mine = [s for s in settings if s.paper == paper]
        lines += [f"## {PAPER_NAMES.get(paper, paper)}", "",
                  f"{len(mine)} settings, {sum(bool(s.deviation) for s in mine)} of them declared deviations.", "",
                  "| setting | runs | paper | harness | source |", "|---|---|---|---|---|"]
        for s in mine:
            run = s.runs[0]
            got = lookup(s, run)
            key = s.key + (f" ({s.task})" if s.task else "") + (f" [table {s.table}]" if s.table else "")
            runs = ", ".join(r.split("/")[0] for r in s.runs) + f" / {run.split('/')[1]}"
            paper_v = _text(s.value) + (f" {s.unit}" if s.unit else "")
            ours = _text(got) + (f" — **deviation**: {s.deviation}" if s.deviation else "")
            lines.append(f"| `{key}` | {runs} | {paper_v} | {ours} | {s.source} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--write"] and len(argv) == 3:
        Path(argv[2]).write_text(render())
        print(f"wrote {argv[2]}")
        return 0
    bad = mismatches()
    for line in bad:
        print(line)
    print(f"{len(load_settings())} settings, {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
