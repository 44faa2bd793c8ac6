"""`bench suite NAME`: run the experiments that fill a paper table, skipping what is recorded.

A suite names tables (`[suite.*]` in results/paper/tables.toml). Its jobs are the runnable cells'
experiments, merged so that one `bench run` scores every task a (method, settings, protocol) needs,
once per seed, ordered so that the protocols of one encoder run back to back: the runner reuses the
pre-training under its key. A job whose every cell already has a matching record for that seed is
skipped; a job that fails is reported at the end and the suite goes on with the next.
"""
from __future__ import annotations

import statistics
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.config import load_config
from harness.errors import BenchError, ConfigError
from harness.report import paper


@dataclass
class Job:
    method: str
    protocol: str
    sets: tuple[str, ...]
    tasks: list[str]
    seed: int
    experiments: list[paper.Experiment] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)  # "table: row / column", for the report

    @property
    def name(self) -> str:
        sets = ", ".join(s.split(".", 2)[-1] if s.startswith("methods.") else s for s in self.sets)
        variant = f" [{sets}]" if sets else ""
        return f"{self.method}{variant} / {self.protocol} on {', '.join(self.tasks)} / seed {self.seed}"

    def overrides(self) -> list[str]:
        tasks = ", ".join(f'"{t}"' for t in self.tasks)
        return [*self.sets, f"protocols.{self.protocol}.tasks=[{tasks}]"]


def parse_only(only: list[str]) -> dict[str, set[str]]:
    """`--only rho=1,2 --only method=rho_byol` -> {"rho": {"1", "2"}, "method": {"rho_byol"}}."""
    out: dict[str, set[str]] = {}
    for item in only:
        key, eq, values = item.partition("=")
        if not eq or not values or key not in paper.SELECTORS:
            raise ConfigError(f"--only {item!r}: write SELECTOR=V1,V2 with a selector among {', '.join(paper.SELECTORS)}")
        out.setdefault(key, set()).update(v.strip() for v in values.split(","))
    return out


def plan(name: str, profile: str, seeds: int, only: dict[str, set[str]] | None = None,
         path: str | None = None) -> tuple[list[Job], list[str]]:
    """The suite's jobs under `profile` (seeds 0..seeds-1), and one line per cell it cannot run."""
    defs = paper.load_definitions()
    if name not in defs.suites:
        raise ConfigError(f"unknown suite {name!r}; known: {', '.join(defs.suites)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    jobs: dict[tuple, Job] = {}
    skipped = []
    for tid in defs.suites[name]["tables"]:
        table = defs.table(tid)
        for i, row in enumerate(table.rows):
            for j, col in enumerate(table.columns):
                sel = table.selectors(i, j)
                if only and any(sel.get(k, "") not in v for k, v in only.items()):
                    continue
                where = f"{tid}: {row.label} / {(col.group + ' ' if col.group else '')}{col.label}"
                exp = paper.experiment(defs, table, i, j, profile, path)
                if isinstance(exp, paper.NotRunnable):
                    skipped.append(f"{where}: {exp.reason}")
                    continue
                for seed in range(seeds):
                    job = jobs.setdefault((exp.method, exp.sets, exp.protocol, seed),
                                          Job(exp.method, exp.protocol, exp.sets, [], seed))
                    if exp.task not in job.tasks:
                        job.tasks.append(exp.task)
                    if exp not in job.experiments:
                        job.experiments.append(exp)
                    job.cells.append(where)
    order = list(dict.fromkeys((k[0], k[1]) for k in jobs))  # encoders in first-use order
    ordered = sorted(jobs.values(), key=lambda j: (j.seed, order.index((j.method, j.sets)), j.protocol))
    return ordered, skipped


def done(job: Job, records: list[dict], profile: str, path: str | None = None) -> bool:
    """Whether every cell of the job has a matching record of its seed."""
    mine = [r for r in records if r.get("seed") == job.seed]
    return all(any(paper.matches(r, profile, e, path) for r in mine) for e in job.experiments)


def estimate(job: Job, records: list[dict], profile: str, path: str | None = None) -> tuple[str, float | None, float | None]:
    """(what pre-training will do, its estimated seconds, the scoring's) from the records of this profile:
    pre-training seconds per epoch and clip per video of the same method, protocol seconds per task of the
    same protocol on the same backbone (of any backbone if none is recorded: fine-tuning VIMPAC's transformer
    costs about 40 times the small CNN's); None where no record tells."""
    from harness import code_version
    from harness.config import resolved_precision
    from harness.engine import resolve_device
    from harness.pretraining import encoder_dir

    cfg = load_config(profile, job.overrides(), method=job.method, protocol=job.protocol, seed=job.seed, path=path)
    pre, seconds = "none", 0.0
    if cfg.pretrains:
        device = resolve_device(cfg.run).type
        _, folder = encoder_dir(cfg, device, resolved_precision(cfg.pretrain.precision, device),
                                code_version.pretrain_version(cfg.method))
        if (folder / "encoder.pt").exists():
            pre = "reuse"
        else:
            rho = getattr(cfg.method_cfg, "rho", 1)
            rates = [r["pretrain"]["seconds"] / (r["identity"]["encoder"].get("pretrain.epochs", 1)
                                                  * r["identity"]["encoder"].get(f"methods.{job.method}.rho", 1))
                     for r in records if r.get("profile") == profile and r.get("method") == job.method
                     and (r.get("pretrain") or {}).get("seconds")]
            pre = "train"
            seconds = statistics.median(rates) * cfg.pretrain.epochs * rho if rates else None
    scored = [r for r in records if r.get("profile") == profile and r.get("protocol") == job.protocol
              and "protocol_seconds" in r.get("costs", {})]
    scored = [r for r in scored if r.get("backbone") == cfg.backbone.name] or scored
    per_task = [r["costs"]["protocol_seconds"] / max(1, len([t for t in r["results"] if "@" not in t["task"]]))
                for r in scored]
    return pre, seconds, statistics.median(per_task) * len(job.tasks) if per_task else None


def seeds_plan(jobs: list[Job], records: list[dict], profile: str, runs_dir: Path, detect: float, seeds: int,
               path: str | None = None) -> list[str]:
    """How many seeds the suite's comparisons need, per column (protocol, task, metric): from every pair of
    its rows already recorded with two seeds or more and per-video outputs, the variance of one seed's paired
    difference (median over the pairs); then the difference `seeds` seeds detect with 80% power, and the seeds
    a difference of `detect` points needs."""
    import itertools

    from harness.report import compare as cmp

    if not detect > 0:
        raise ConfigError(f"--detect {detect:g}: the difference to detect must be a positive number of points")
    columns: dict[tuple[str, str, str], list[paper.Experiment]] = {}
    for job in jobs:
        for e in (e for e in job.experiments if e.reads == "result"):  # pre-training columns have no per-video form
            if e not in columns.setdefault((e.protocol, e.task, e.metric), []):
                columns[(e.protocol, e.task, e.metric)].append(e)
    lines = []
    for (protocol, task, metric), exps in columns.items():
        rows = [[r for r in records if paper.matches(r, profile, e, path)] for e in exps]
        found = []
        for ra, rb in itertools.combinations([r for r in rows if r], 2):
            try:
                c = cmp.compare(cmp.pair(ra, rb, task, metric, runs_dir), task, metric)
            except ConfigError:  # no per-video outputs, or nothing shared
                continue
            if len(c.seeds) > 1:
                found.append(c)
        head = f"seeds plan, {protocol} on {task} ({metric}): "
        if not found:
            lines.append(head + "no two rows recorded with 2+ shared seeds and per-video outputs yet, so the seeds' "
                                "share of the variance is unknown; run --seeds 2 first, then ask again")
            continue
        var = statistics.median(c.per_seed_var for c in found)
        share = statistics.median(c.seed_share for c in found)
        lines.append(head + f"one seed's paired difference has sd {var ** 0.5:.1f} points ({100 * share:.0f}% from "
                     f"training seeds; median of {len(found)} pairs of rows); {seeds} seed{'s' * (seeds != 1)} detect "
                     f"{cmp.detectable(var, seeds):.1f} points with 80% power; {detect:g} points needs "
                     f"{cmp.seeds_for(var, detect)} seeds")
    return lines


@dataclass
class Outcome:
    job: Job
    status: str  # "ran", "recorded" (skipped: already there), "failed"
    detail: str = ""
    seconds: float = 0.0


def run_suite(jobs: list[Job], profile: str, records_of: Callable[[], list[dict]], *, dry_run: bool = False,
              path: str | None = None, results_dir: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print, runner: Callable | None = None,
              plan_seeds: Callable[[list[dict]], list[str]] | None = None) -> list[Outcome]:
    """Run (or with `dry_run`, list with their estimated cost and, with `plan_seeds`, the seeds its
    comparisons need) the jobs not yet recorded; `runner` is `harness.runner.run` unless a test gives another."""
    records = records_of()
    outcomes = []
    todo = [j for j in jobs if not done(j, records, profile, path)]
    for j in jobs:
        if j not in todo:
            outcomes.append(Outcome(j, "recorded"))
    if dry_run:
        total, unknown = 0.0, 0
        for k, job in enumerate(todo, 1):
            pre, pre_s, score_s = estimate(job, records, profile, path)
            known = [x for x in (pre_s, score_s) if x is not None]
            total += sum(known)
            unknown += len(known) < 2
            log(f"[{k}/{len(todo)}] {job.name}: pre-training {pre}" + (f" {_about(pre_s)}" if pre == "train" else "")
                + f", scoring {_about(score_s)}")
            outcomes.append(Outcome(job, "planned", pre, sum(known)))
        log(f"{len(todo)} runs to do, {len(jobs) - len(todo)} already recorded; estimated {_duration(total)}"
            + (f" plus {unknown} runs of unknown cost (? : no earlier record of this profile tells)" if unknown else ""))
        for line in plan_seeds(records) if plan_seeds else []:
            log(line)
        return outcomes
    if runner is None:
        from harness.runner import run as runner

    from harness.progress import JobClock

    def seconds(job: Job) -> float | None:  # unknown if either part is: a cheap scoring must not hide a pre-training
        parts = estimate(job, records, profile, path)[1:]
        return None if None in parts else sum(parts) or None

    clock = JobClock(len(todo), [seconds(j) for j in todo])
    for k, job in enumerate(todo, 1):
        log(clock.line(k, job.name))
        t0 = time.perf_counter()
        try:
            cfg = load_config(profile, job.overrides(), method=job.method, protocol=job.protocol, seed=job.seed,
                              path=path, results_dir=results_dir)
            _, where = runner(cfg, progress=progress)
            outcomes.append(Outcome(job, "ran", str(where), time.perf_counter() - t0))
        except KeyboardInterrupt:
            raise
        except BenchError as e:
            outcomes.append(Outcome(job, "failed", f"{type(e).__name__}: {e}", time.perf_counter() - t0))
            log(f"  failed: {e}")
        except Exception as e:  # a bug in one cell: report it with its place and go on with the others
            last = traceback.extract_tb(e.__traceback__)[-1]
            outcomes.append(Outcome(job, "failed", f"{type(e).__name__}: {e} ({Path(last.filename).name}:{last.lineno})",
                                    time.perf_counter() - t0))
            log(f"  failed: {type(e).__name__}: {e}")
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    ran = [o for o in outcomes if o.status == "ran"]
    failed = [o for o in outcomes if o.status == "failed"]
    lines = [f"suite: {len(ran)} ran ({_duration(sum(o.seconds for o in ran))}), "
             f"{sum(o.status == 'recorded' for o in outcomes)} already recorded, {len(failed)} failed"]
    for o in failed:
        lines.append(f"  failed: {o.job.name}: {o.detail}")
    return "\n".join(lines)


def _about(seconds: float | None) -> str:
    return "?" if seconds is None else f"~{_duration(seconds)}"


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def run_argv(job: Job, profile: str, path: str | None, results_dir: str | None) -> list[str]:
    """The `bench run` arguments of a job (for a launcher)."""
    argv = ["-m", job.method, "--protocol", job.protocol, "-p", profile, "--seed", str(job.seed), "-q"]
    for o in job.overrides():
        argv += ["--set", o]
    if path:
        argv += ["--config", str(Path(path).resolve())]
    if results_dir:
        argv += ["--results-dir", str(Path(results_dir).resolve())]
    return argv


def by_encoder(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by the encoder they share (method, settings, seed), in plan order."""
    groups: dict[tuple, list[Job]] = {}
    for j in jobs:
        groups.setdefault((j.method, j.sets, j.seed), []).append(j)
    return list(groups.values())


def submit(jobs: list[Job], records: list[dict], profile: str, path: str | None, results_dir: str | None,
           opts, entry: Callable[[list[str]], int]) -> tuple[list[Job], list[list[Job]], list]:
    """Submit the jobs not yet recorded as a job array, one job per encoder (`by_encoder`); `entry` is the
    command line's `main`, which each job calls. Returns the runs to do, their groups and the submitted jobs."""
    from harness.launch import submit_array

    todo = [j for j in jobs if not done(j, records, profile, path)]
    groups = by_encoder(todo)
    submitted = submit_array([[run_argv(j, profile, path, results_dir) for j in g] for g in groups], opts,
                             entry) if groups else []
    return todo, groups, submitted
