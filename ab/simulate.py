"""`feedrank ab simulate`: simulated users against the real server, then the A/B report.

Requests fall in the world's last `days` days: the server's features are a snapshot of the whole
world with point-in-time history, so a request at time t sees exactly the history before t, the
calendar stays inside the months the models were trained on, and the window is the held-out
evaluation window of `feedrank evaluate` (whose simulated hit rate this run should reproduce).
The world's own feed in those days is not used for likes: every like the report counts was drawn
here, from the ground truth, on a post the server showed.

With `new_posts_per_day`, posts the world held back are published (`POST /posts`) as the
simulated clock reaches their release times, and the report says how each group treated them
(ab/fresh_posts.py).

The loop is closed: each answer's views and drawn likes are posted back to the server
(`POST /feed/events`) before that user's next request goes out, so the server never shows a user
a post they liked earlier in the simulation. A user's requests run in time order, one at a time;
different users' run concurrently. Every random number is drawn up front per request, so a seed
fixes the run whatever order the answers arrive in.

    OUT/log/        the server's exposure log, and the events it was sent (events-*.jsonl)
    OUT/events/     the drawn feed events (feed_data schema), one Parquet file per day
    OUT/report/     report.json, report.html, figures; expected.json (ground truth);
                    prediction.json (the A/B against `feedrank evaluate`'s offline replay);
                    fresh_posts.json (with new posts: their share of exposures and likes)
    OUT/repository/ with --aa: links to the models and an A/A router.toml
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd

from feedrank.ab.analysis import run_report
from feedrank.ab.expected import expected_metrics, print_expected
from feedrank.ab.fresh_posts import (
    Releases,
    fresh_html,
    fresh_report,
    oracle_share,
    print_fresh,
)
from feedrank.ab.html import add_section
from feedrank.ab.prediction import report_prediction
from feedrank.ab.report import Report
from feedrank.ab.server_process import ServerProcess
from feedrank.ab.split import router_shares
from feedrank.errors import FeedrankError
from feedrank.output import results_console
from feedrank.progress import progress_bar
from feedrank.server.exposure_log import query as exposure_query
from feedrank.world import schema
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout
from feedrank.world.simulated_users import (
    SLOTS,
    Reactions,
    Traffic,
    experiment_streams,
    feed_events,
)


@dataclass
class Simulation:
    world: Path
    repository: Path
    out: Path
    users: int = 20000
    days: int = 7
    seed: int = 0
    requests_per_day: float = 1.5
    concurrency: int = 8
    aa: bool = False
    drop_share: float = 0.0
    window_s: int = 3600
    new_posts_per_day: int = 0

    def run(self) -> Report:
        self._check()
        truth = catalogue_truth = GroundTruth.load(self.world)
        days = self._days()
        traffic = Traffic.plan(
            truth.user_ids, self.users, days, self.seed, requests_per_day=self.requests_per_day
        )
        releases = None
        if self.new_posts_per_day:
            releases = Releases.plan(
                GroundTruth.held_back(self.world),
                days,
                self.new_posts_per_day,
                experiment_streams(self.seed)[4],
            )
            truth = truth.with_posts(releases.posts)
        for sub in ("log", "events", "report", "repository"):
            shutil.rmtree(self.out / sub, ignore_errors=True)
        self.out.mkdir(parents=True, exist_ok=True)
        repository = self._aa_repository() if self.aa else self.repository
        with ServerProcess(
            self.world,
            repository,
            self.out / "log",
            self.out / "server.out",
            # every feed from the fast path, as the replay that predicts this A/B ranks it
            env={"FEEDRANK_SERVER__FAST_PATH_WAIT": "true"},
        ) as server:
            print(f"the experiment live: {server.url}/experiment", file=sys.stderr, flush=True)
            try:
                views = asyncio.run(
                    ClosedLoop(
                        server.url, truth, traffic.reactions, self.concurrency, releases
                    ).run(traffic.requests)
                )
            except FeedrankError as error:
                raise FeedrankError(f"{error} (server output: {server.output})") from None
        if self.drop_share > 0:
            drop_users(self.out / "log", "test", self.drop_share, experiment_streams(self.seed)[2])
        self._write_events(
            feed_events(views, views["liked"].to_numpy(), views["delay_s"].to_numpy())
        )
        console = results_console()
        report = run_report(
            [self.out / "log"],
            sorted((self.out / "events").glob("*.parquet")),
            window_s=self.window_s,
            out=self.out / "report",
            seed=self.seed,
            shares=router_shares(repository / "router.toml"),
            console=console,
            covariate_world=self.world,
        )
        groups = logged_groups(self.out / "log")
        expected = expected_metrics(truth, views, groups)
        (self.out / "report" / "expected.json").write_text(json.dumps(expected, indent=1))
        print_expected(expected, console)
        if releases is not None:
            fresh = fresh_report(views, releases, groups, seed=self.seed)
            fresh["oracle"] = oracle_share(
                truth,
                catalogue_truth.post_ids,
                releases,
                views.groupby("exposure")[["user_id", "timestamp"]].first(),
                slots=SLOTS,
                seed=self.seed,
            )
            (self.out / "report" / "fresh_posts.json").write_text(json.dumps(fresh, indent=1))
            print_fresh(fresh, console)
            add_section(self.out / "report" / "report.html", *fresh_html(fresh))
        if not self.aa:
            report_prediction(repository, report, expected, self.out / "report", console)
        return report

    def _check(self) -> None:
        if self.users < 2 or self.days < 1 or self.concurrency < 1:
            raise FeedrankError("--users must be >= 2, --days and --concurrency >= 1")
        if self.new_posts_per_day < 0:
            raise FeedrankError(f"--new-posts-per-day must be >= 0, got {self.new_posts_per_day}")
        if not 0 <= self.drop_share < 1:
            raise FeedrankError(f"--drop-share must be in [0, 1), got {self.drop_share}")
        if not (self.repository / "router.toml").is_file():
            raise FeedrankError(f"{self.repository / 'router.toml'}: router config not found")

    def _days(self) -> np.ndarray:
        feed = WorldLayout(self.world).feed_dir
        days = sorted(date.fromisoformat(p.stem) for p in feed.glob("*.parquet"))
        if len(days) < self.days:
            raise FeedrankError(f"{feed}: {len(days)} days of feed, fewer than --days {self.days}")
        return np.array(days[-self.days :], "datetime64[D]")

    def _aa_repository(self) -> Path:
        """A repository of links to the real models whose router sends every group to the
        control group's model version: the same buckets, so the split is unchanged."""
        target = self.out / "repository"
        target.mkdir(parents=True)
        for entry in self.repository.iterdir():
            if entry.is_dir():
                (target / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
        config = tomllib.loads((self.repository / "router.toml").read_text())
        control = next(g for g in config["groups"] if g["name"] == "control")
        lines = [f'salt = "{config["salt"]}"']
        for g in config["groups"]:
            lines += [
                "",
                "[[groups]]",
                f'name = "{g["name"]}"',
                f"buckets = [{g['buckets'][0]}, {g['buckets'][1]}]",
                f'model = "{control["model"]}"',
                f"version = {control['version']}",
            ]
        (target / "router.toml").write_text("\n".join(lines) + "\n")
        return target

    def _write_events(self, events: pd.DataFrame) -> None:
        folder = self.out / "events"
        folder.mkdir(parents=True)
        for day, rows in events.groupby(events["timestamp"].dt.date):
            schema.write(rows, schema.FEED, folder / f"{day}.parquet")


class ClosedLoop:
    """Simulated users against the server: ask for a feed, react to it, report the reaction."""

    def __init__(
        self,
        url: str,
        truth: GroundTruth,
        reactions: Reactions,
        concurrency: int,
        releases: Releases | None = None,
    ) -> None:
        self.url, self.truth, self.reactions = url, truth, reactions
        self.gate = asyncio.Semaphore(concurrency)
        self.liked: dict[int, set[int]] = defaultdict(set)
        self.releases = releases
        self.released = 0

    async def run(self, requests: pd.DataFrame) -> pd.DataFrame:
        """Every request (user_id, requested_time; in time order) through the server; the shown
        posts as views: exposure, user_id, post_id, timestamp, liked, delay_s."""
        users = requests["user_id"].tolist()
        times = requests["requested_time"].to_numpy("datetime64[us]")
        shown: list[np.ndarray] = [np.empty(0, np.int64)] * len(requests)
        liked: list[np.ndarray] = [np.empty(0, bool)] * len(requests)
        with progress_bar() as progress:
            task = progress.add_task("simulated feed requests", total=len(requests))
            async with httpx.AsyncClient(base_url=self.url, timeout=120.0) as client:
                failed: list[BaseException] = []

                async def one(i: int, previous: asyncio.Task | None) -> None:
                    try:
                        if previous is not None:  # the user's likes so far reach the server first
                            await previous
                        shown[i], liked[i] = await self._exposure(client, i, users[i], times[i])
                    except BaseException as error:
                        failed.append(error)
                        raise
                    finally:
                        self.gate.release()
                    progress.advance(task)

                # dispatched strictly in time order, at most `concurrency` in flight: the server
                # sees the days one after another, as live traffic would be
                last: dict[int, asyncio.Task] = {}
                for i in range(len(requests)):
                    if self._due(times[i]):  # earlier requests answered first: none sees it
                        await asyncio.gather(*last.values())
                        await self._publish(client, times[i])
                    await self.gate.acquire()
                    if failed:
                        break
                    last[users[i]] = asyncio.create_task(one(i, last.get(users[i])))
                await asyncio.gather(*last.values())
        counts = np.array([len(s) for s in shown])
        exposure = np.repeat(np.arange(len(requests)), counts)
        slot = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return pd.DataFrame(
            {
                "exposure": exposure,
                "user_id": np.repeat(users, counts),
                "post_id": np.concatenate(shown),
                "timestamp": times[exposure],
                "liked": np.concatenate(liked),
                "delay_s": self.reactions.delays_s[exposure, slot],
            }
        )

    def _due(self, at: np.datetime64) -> bool:
        return self.releases is not None and self.releases.due(at) > self.released

    async def _publish(self, client: httpx.AsyncClient, at: np.datetime64) -> None:
        """Publish the posts released by `at`; every loaded version must be able to rank them."""
        assert self.releases is not None
        end = self.releases.due(at)
        answer = await self._call(
            client.post("/posts", json=self.releases.batch(self.released, end))
        )
        if answer["refused_by"]:
            raise FeedrankError(f"a version cannot rank new posts: {answer['refused_by']}")
        self.released = end

    async def _exposure(
        self, client: httpx.AsyncClient, i: int, user: int, at: np.datetime64
    ) -> tuple[np.ndarray, np.ndarray]:
        """One feed request and the user's reaction, posted back; (shown posts, liked)."""
        stamp = str(at)
        feed = await self._call(
            client.get("/post/recommendations/", params={"id": user, "time": stamp, "limit": SLOTS})
        )
        shown = np.array([p["id"] for p in feed["recommendations"]], np.int64)
        liked = self.reactions.react(self.truth, i, user, shown, at, self.liked[user])
        like_at = self.reactions.like_times(i, at, liked)
        events = [
            {
                "user_id": user,
                "post_id": int(post),
                "action": "view",
                "timestamp": stamp,
                "target": int(hit),
            }
            for post, hit in zip(shown, liked, strict=True)
        ]
        events += [
            {"user_id": user, "post_id": int(post), "action": "like", "timestamp": str(when)}
            for post, when in zip(shown[liked], like_at, strict=True)
        ]
        if events:
            await self._call(client.post("/feed/events", json=events))
        self.liked[user].update(shown[liked].tolist())
        return shown, liked

    async def _call(self, sending) -> dict:
        try:
            response = await sending
        except httpx.TransportError as error:
            raise FeedrankError(f"the server did not answer: {error!r}") from None
        if response.status_code != 200:
            raise FeedrankError(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:300]}"
            )
        return response.json()


def logged_groups(log_dir: Path) -> pd.Series:
    """user_id -> the group the log records for that user."""
    rows = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
        f"SELECT user_id, any_value(exp_group) AS exp_group FROM "
        f"({exposure_query(log_dir)}) GROUP BY user_id"
    ).df()
    return rows.set_index("user_id")["exp_group"]


def drop_users(log_dir: Path, group: str, share: float, rng: np.random.Generator) -> int:
    """A logging bug: remove every record of a random `share` of `group`'s users from the log
    (rewritten as one file). Returns how many users were dropped."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE log AS {exposure_query(log_dir)}")
    users = con.execute(
        "SELECT DISTINCT user_id FROM log WHERE exp_group = $g ORDER BY 1", {"g": group}
    ).fetchnumpy()["user_id"]
    dropped = rng.choice(users, int(round(share * len(users))), replace=False)
    con.register("dropped", pd.DataFrame({"user_id": dropped}))
    files = sorted(log_dir.glob("exposures-*.jsonl"))
    target = files[0].with_name(files[0].stem + "-dropped.jsonl.tmp")
    con.execute(
        f"COPY (SELECT * FROM log WHERE user_id NOT IN (SELECT user_id FROM dropped) "
        f"ORDER BY server_time) TO '{target}' (FORMAT JSON)"
    )
    for path in files:
        path.unlink()
    target.rename(files[0])
    return len(dropped)
