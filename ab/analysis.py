"""`feedrank ab report` end to end: log + likes (+ a world's pre-experiment feed for CUPED) ->
per-user table -> report -> terminal, JSON, HTML."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from feedrank.ab import attribution
from feedrank.ab.attribution import attribute, connect_log
from feedrank.ab.covariate import pre_period
from feedrank.ab.html import write_html
from feedrank.ab.report import Report, analyse, print_report, write_json
from feedrank.errors import FeedrankError
from feedrank.output import results_console


def run_report(
    log_dirs: list[Path],
    like_files: list[Path],
    *,
    window_s: int,
    shares: dict[str, float] | None,
    out: Path,
    control: str = "control",
    seed: int = 0,
    console: Console | None = None,
    covariate_world: Path | None = None,
) -> Report:
    """With `covariate_world`, the comparisons also carry CUPED with the users' like rates from
    that world's feed_data before the experiment."""
    con = connect_log(log_dirs, like_files)
    per_user, daily = attribute(con, window_s)
    pre = (
        pre_period(con, attribution.like_files(covariate_world, None)) if covariate_world else None
    )
    try:
        report = analyse(
            per_user,
            daily,
            window_s=window_s,
            shares=shares,
            control=control,
            seed=seed,
            pre_period=pre,
        )
    except ValueError as error:
        raise FeedrankError(f"{', '.join(map(str, log_dirs))}: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "report.json")
    html = write_html(report, out)
    console = console or results_console()
    print_report(report, console)
    console.print(f"wrote {out / 'report.json'} and {html}", highlight=False)
    return report
