"""`bench tables`, `bench leaderboard`, `bench compare` and `bench export`: what the run records hold, read back."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from harness.cli.app import ConfigOpt, ProfileOpt, ResultsOpt, _friendly, _load, app
from harness.errors import ConfigError
from harness.report.records import load_records


@app.command()
def tables(
    paper_: Optional[str] = typer.Option(None, "--paper", metavar="NAME",
                                         help="feichtenhofer2021 | tan2021vimpac | akbari2021vatt (default: all)"),
    table: Optional[str] = typer.Option(None, "--table", metavar="NAME", help="one table, e.g. rho"),
    profile: Optional[str] = ProfileOpt,
    fmt: str = typer.Option("md", "--format", "-f", metavar="FMT", help="md | csv | tex | html"),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="KEY=V1,V2",
                                             help="only the rows and columns with these selector values"),
    out: Optional[str] = typer.Option(None, "--out", metavar="DIR",
                                      help="also write every format and the plots there (e.g. results/tables)"),
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
):
    """The papers' tables in their layout: per cell the paper's number, ours (mean ± std over seeds, 95%
    interval, seed count) and, under the paper profile, the difference; cells without runs are marked."""
    with _friendly():
        from harness.report import paper
        from harness.report import tables as t
        from harness.report.filled import fill
        from harness.report.publish import write_all
        from harness.suite import parse_only

        if fmt not in ("md", "markdown", "csv", "tex", "html"):
            raise ConfigError(f"--format {fmt!r}: one of md, csv, tex, html")
        cfg = _load(profile, config=config, results_dir=results_dir)
        records, skipped = load_records(cfg.runs_dir())
        for line in skipped:
            typer.echo(f"warning: skipped {line}", err=True)
        keep = parse_only(only or [])
        chosen = [paper.restrict(tab, keep) for tab in paper.load_definitions().select(paper_, table)]
        done = [fill(tab, records, cfg.profile, config, cfg.runs_dir()) for tab in chosen]
        if fmt == "html":
            typer.echo(t.html_page(f"Paper tables, profile {cfg.profile}", "\n".join(t.html_table(r) for r in done)))
        elif fmt == "csv":
            typer.echo("\n".join([t.CSV_HEAD] + [line for r in done for line in t.csv_text(r).splitlines()[1:]]))
        else:
            typer.echo("\n\n".join(t.render(r, fmt) for r in done))
        if out:
            for path in write_all(done, Path(out) / cfg.profile, cfg.runs_dir()):
                typer.echo(f"wrote {path}", err=True)



@app.command()
def leaderboard(
    fmt: str = typer.Option("markdown", "--format", "-f", metavar="FMT",
                            help="markdown | csv | html (writes <results>/leaderboard.html)"),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", metavar="NAME", help="only this profile"),
    metric: str = typer.Option("top1", "--metric", metavar="NAME",
                               help="top1 | top5 (all views) | top1_1view | top5_1view (centre view) | "
                                    "R@1 ... (retrieval)"),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", metavar="NAME", help="only these methods"),
    protocol: Optional[List[str]] = typer.Option(None, "--protocol", metavar="NAME", help="only these protocols"),
    task: Optional[List[str]] = typer.Option(None, "--task", metavar="NAME", help="only these tasks"),
    only: Optional[str] = typer.Option(None, "--only", metavar="KEY=V,...",
                                       help="only runs with these settings: rho=2,pretrain.epochs=62"),
    results_dir: Optional[str] = ResultsOpt,
    config: Optional[str] = ConfigOpt,
):
    """Recorded runs as a method-variant x protocol:task table, temporally-heavy tasks first: mean over seeds
    ± 95% CI (one seed: its bootstrap interval over test videos, in brackets) and each row's cost."""
    with _friendly():
        if fmt not in ("markdown", "csv", "html"):
            raise ConfigError(f"--format {fmt!r}: choose markdown, csv or html")
        cfg = _load(config=config, results_dir=results_dir)
        records, skipped = load_records(cfg.runs_dir())
        if not records:
            why = f" ({len(skipped)} other files skipped, e.g. {skipped[0]})" if skipped else ""
            raise ConfigError(f"no run records in {cfg.runs_dir()}{why}: try `bench run --method rho_byol` "
                              "or name another folder with --results-dir")
        for line in skipped:
            typer.echo(f"warning: skipped {line}", err=True)
        from harness.report.leaderboard import filter_records, format_table
        from harness.report.leaderboard import leaderboard as make_leaderboard
        from harness.report.throughput import load_perf, perf_table

        if method or protocol or task or only:
            kept = filter_records(records, method or (), protocol or (), task or (), only)
            if not kept:
                raise ConfigError("no run matches the filters (--method, --protocol, --task, --only)")
            records = kept
        board = make_leaderboard(records, metric=metric, profile=profile, runs_dir=cfg.runs_dir())
        if fmt == "html":
            from harness.report.html import page
            from harness.storage import atomic_write

            path = cfg.results_root() / "leaderboard.html"
            text = page(board, "runs/", f"Leaderboard ({profile or 'all profiles'}, {metric})")
            atomic_write(path, lambda f: f.write(text))
            typer.echo(f"wrote {path} (open it in a browser; its links lead to the records in {cfg.runs_dir()})")
            return
        typer.echo(format_table(board, fmt))
        steps = perf_table(load_perf(cfg.results_root())) if fmt == "markdown" else ""
        if steps:
            typer.echo(f"\nStep throughput, the newest `bench perf` of each method and backbone:\n\n{steps}")


@app.command()
def compare(
    a: str = typer.Argument(..., help="leaderboard rows A: a method, or KEY=V,... (method=rho_byol,rho=4)"),
    b: str = typer.Argument(..., help="rows B, as A"),
    metric: str = typer.Option("top1", "--metric", metavar="NAME", help="top1 | top5 | top1_1view | R@10 | t2v_R@5 ..."),
    task: Optional[List[str]] = typer.Option(None, "--task", metavar="NAME", help="default: every task both scored"),
    protocol: Optional[str] = typer.Option(None, "--protocol", metavar="NAME", help="when A or B ran several"),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", metavar="NAME", help="when A or B ran several"),
    plan: Optional[float] = typer.Option(None, "--plan", metavar="POINTS",
                                         help="also say how many seeds a difference of POINTS needs"),
    results_dir: Optional[str] = ResultsOpt,
    config: Optional[str] = ConfigOpt,
):
    """Is A better than B? The paired difference over the seeds and test videos both scored: a 95% interval
    and p-value (Student's t over seeds paired by video), a verdict, and the variance from seeds vs test clips."""
    with _friendly():
        from harness.report import compare as cmp

        cfg = _load(config=config, results_dir=results_dir)
        records, _ = load_records(cfg.runs_dir())
        sides = {}
        for name, text in (("A", a), ("B", b)):
            sel = cmp.parse_selector(text)
            for key, value in (("protocol", protocol), ("profile", profile)):
                if value and key not in sel:
                    sel[key] = value
            rows = cmp.select(records, sel)
            for key in ("protocol", "profile"):
                kinds = sorted({r[key] for r in rows})
                if len(kinds) > 1:
                    raise ConfigError(f"{name} = {text!r} selects runs of several {key}s ({', '.join(kinds)}); "
                                      f"add --{key}")
            if not rows:
                raise ConfigError(f"{name} = {text!r} selects no record in {cfg.runs_dir()}")
            from harness.report.leaderboard import variants as settings_of

            variants = settings_of(rows)
            if len(variants) > 1:
                first = variants[0].partition("[")[2].rstrip("]").split(", ")  # the first variant's settings
                example = f"{text},{','.join(first)}" if first != [""] else "train_per_class=default"
                raise ConfigError(f"{name} = {text!r} selects runs of {len(variants)} settings ("
                                  + "; ".join(variants[:4]) + f"): add the settings that tell them apart, e.g. "
                                  f"{example!r}")
            sides[name] = rows
        if sides["A"][0]["protocol"] != sides["B"][0]["protocol"]:
            raise ConfigError("A and B were scored by different protocols; compare runs of one protocol")
        a_tasks = list(dict.fromkeys(t for r in sides["A"] for t in r["tasks"]))  # every task A's runs scored
        shared = [t for t in a_tasks if any(t in r["tasks"] for r in sides["B"])]
        tasks = task or shared
        if not tasks:
            raise ConfigError("A and B share no task")
        for t in tasks:
            c = cmp.compare(cmp.pair(sides["A"], sides["B"], t, metric, cfg.runs_dir()), t, metric)
            typer.echo(cmp.describe(c, a, b))
            if plan:
                typer.echo(f"  to detect {plan:g} points with 80% power: {c.seeds_for(plan)} seeds each "
                           f"(detectable now: {c.detectable():.1f})")


@app.command("export")
def export_(
    which: str = typer.Argument(..., help="a record id, a pre-training key, or selectors: method=rho_byol,rho=4,seed=0"),
    out: str = typer.Option("exports", "--out", metavar="DIR", help="where the .pt and its .json go"),
    results_dir: Optional[str] = ResultsOpt,
    config: Optional[str] = ConfigOpt,
):
    """Write a trained encoder as a plain state dict in its source library's layout (torchvision, pytorchvideo,
    or the harness's own), with a JSON of its clip spec, settings and provenance."""
    with _friendly():
        from harness.export import export, find

        cfg = _load(config=config, results_dir=results_dir)
        records, _ = load_records(cfg.runs_dir())
        target, info = export(find(records, which), cfg.cache_root(), Path(out))
        typer.echo(f"wrote {target} and {info} (how to load it: the JSON's `how_to_load`)")
