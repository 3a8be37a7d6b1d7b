"""The live experiment page: how the groups are doing while the experiment runs.

`/experiment` (a page shipped in the package) polls `GET /experiment/status`: the router config
in force; users and exposures per group so far; hit rate@5, CTR and likes per user with 95%
intervals; each group's difference from control (Welch); the split check. All of it comes from
the server's exposure log and the events posted to `/feed/events`, attributed exactly as
`feedrank ab report` attributes them (ab/attribution.py). `GET /experiment/report` writes the
full report of the same logs (bootstrap intervals, daily plots) into `LOG/report/` and shows it.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedrank.ab import stats
from feedrank.ab.attribution import attribute, connect_log
from feedrank.ab.html import write_html
from feedrank.ab.report import METRICS, analyse, user_values
from feedrank.server import events as server_events
from feedrank.server.errors import ApiError
from feedrank.server.feed import FeedService
from feedrank.server.openapi import json_body
from feedrank.server.pages import Pages
from feedrank.settings import Settings

WINDOW_S = 3600  # a like counts within an hour of the exposure, as `ab report` counts by default


class LiveExperiment:
    """The status of one log folder, recomputed only when a log file has grown."""

    def __init__(self, log_dir: Path, window_s: int = WINDOW_S) -> None:
        self.log_dir, self.window_s = log_dir, window_s
        self._last: tuple[tuple, dict[str, Any]] | None = None

    def status(self, router: dict[str, Any]) -> dict[str, Any]:
        logs = sorted(self.log_dir.glob("exposures-*.jsonl"))
        key = (
            tuple((p.name, p.stat().st_size) for p in logs + server_events.log_files(self.log_dir)),
            repr(router["groups"]),
        )
        if self._last is None or self._last[0] != key:
            self._last = key, self._compute(router, bool(logs))
        return {"router": router, "window_s": self.window_s, **self._last[1]}

    def _compute(self, router: dict[str, Any], logged: bool) -> dict[str, Any]:
        values = user_values(self.per_user()) if logged else pd.DataFrame()
        if values.empty:
            return {"groups": [], "comparisons": [], "srm": None, "notes": ["no exposure yet"]}
        by_group = {str(name): frame for name, frame in values.groupby("exp_group", sort=True)}
        shares = {g["name"]: g["share"] for g in router["groups"]}
        control = _control(list(shares) or list(by_group))
        notes: list[str] = []
        groups = [_group(name, frame) for name, frame in by_group.items()]
        comparisons = [
            {"group": name, "metric": metric, **_welch(by_group[control], frame, metric)}
            for name, frame in by_group.items()
            if name != control and control in by_group
            for metric in METRICS
        ]
        srm = None
        outside = sorted(set(by_group) - set(shares))
        if outside:
            notes.append(f"groups not in the router config in force: {outside}: split not checked")
        else:
            observed = {name: len(by_group.get(name, ())) for name in shares}
            srm = stats.sample_ratio(observed, shares).as_dict()
        return {
            "control": control,
            "groups": groups,
            "comparisons": comparisons,
            "srm": srm,
            "notes": notes,
        }

    def per_user(self) -> pd.DataFrame:
        return attribute(self._connect(), self.window_s)[0]

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return connect_log([self.log_dir], server_events.log_files(self.log_dir))

    def report(self, shares: dict[str, float]) -> Path:
        """The full report of the logs so far, as `feedrank ab report` writes it."""
        per_user, daily = attribute(self._connect(), self.window_s)
        try:
            report = analyse(
                per_user, daily, window_s=self.window_s, shares=shares, control=_control(shares)
            )
        except ValueError as error:
            raise ApiError(409, f"no report yet: {error}") from None
        out = self.log_dir / "report"
        out.mkdir(exist_ok=True)
        return write_html(report, out)


def _control(names: list[str] | dict[str, float]) -> str:
    return "control" if "control" in names else sorted(names)[0]


def _group(name: str, frame: pd.DataFrame) -> dict[str, Any]:
    enough = len(frame) >= 2  # an interval needs two users
    return {
        "name": name,
        "users": len(frame),
        "exposures": int(frame["exposures"].sum()),
        "metrics": {
            m: asdict(stats.mean_interval(frame[m].to_numpy()))
            if enough
            else {"mean": float(frame[m].mean()), "low": None, "high": None}
            for m in METRICS
        },
    }


def _welch(control: pd.DataFrame, test: pd.DataFrame, metric: str) -> dict[str, Any]:
    if len(control) < 2 or len(test) < 2:
        return {"welch": None}
    return {"welch": stats.welch(control[metric].to_numpy(), test[metric].to_numpy()).as_dict()}


def experiment_pages(settings: Settings, service: FeedService) -> Pages:
    live = LiveExperiment(settings.log_dir)
    report_dir = settings.log_dir / "report"

    async def page(request: Request) -> Response:
        return HTMLResponse(files("feedrank.ab").joinpath("static/experiment.html").read_text())

    async def status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(live.status, service.router.state()))

    async def report(request: Request) -> Response:
        groups = service.router.config.describe()["groups"]
        if not any(settings.log_dir.glob("exposures-*.jsonl")):
            raise ApiError(409, "no report yet: no exposure has been logged")
        await run_in_threadpool(live.report, {g["name"]: g["share"] for g in groups})
        return RedirectResponse("/experiment/report/report.html", status_code=303)

    routes = [
        Route("/experiment", page, methods=["GET"]),
        Route("/experiment/status", status, methods=["GET"]),
        Route("/experiment/report", report, methods=["GET"]),
        Mount("/experiment/report", StaticFiles(directory=report_dir, check_dir=False)),
        Mount("/experiment/assets", StaticFiles(packages=[("feedrank.ab", "static")])),
    ]
    return Pages(routes, OPENAPI)


OPENAPI = {
    "/experiment/status": {
        "get": {
            "summary": "Live experiment: router config, users, exposures, hit rate@5, CTR and "
            "likes per user by group with 95% intervals, differences from control, split check",
            "responses": {"200": json_body("the status", {"type": "object"})},
        }
    }
}
