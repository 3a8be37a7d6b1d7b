"""What any model could reach on a generated world, and what reading the text could add.

A generated world's like model is known (world/ground_truth.py), so a learner can be built that
knows its exact form and every term shared by many users and posts (demographics × topic, hour ×
topic, month) and estimates from the log only what a model has to learn from it:
- each post's score (its quality, and its text's sub-theme and tone effect unless that is given
  exactly): the MAP under the world's prior from the post's views before the request's day;
- each user's own terms: the MAP of the world's Gaussian-prior logistic model over the user's
  views before the request, with the terms a topic label reveals (bias, topic taste) or also
  those only a perfect reading of the text reveals (sub-theme taste, tone taste).
Every other term is known while estimating, so these are upper bounds. Measured as `feedrank
evaluate` measures the models:
- the first feed: simulated hit rate@5 over the held-out window's logged sessions, as a share of
  the oracle's lift over random, beside the published versions (`--repository`);
- a week of feeds: the offline A/B replay's loop (ab/replay.py: the simulation's traffic, its
  random numbers, liked posts leaving the feed), paired differences per user.
The gap between "topic" and "topic + sub-theme + tone" bounds what a text representation can add
to a model that knows each post's topic and like history, however good the representation.

    .venv/bin/python benchmarks/learnable_ceiling.py --world data/world \
        --repository model_repository

Writes benchmarks/results/learnable_ceiling{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
from end_to_end import RESULTS

from feedrank.ab import stats
from feedrank.ab.expected import EXPECTED_HIT, EXPECTED_LIKES
from feedrank.ab.replay import per_user, ranked_lists, run_loop
from feedrank.export.hit_rate import (
    HORIZON,
    logged_requests,
    measure,
    model_ranker,
    oracle_ranker,
    random_ranker,
)
from feedrank.export.publish import latest_metadata
from feedrank.export.windows import Windows, world_windows
from feedrank.features.online import OnlineFeatures
from feedrank.server.scoring import VersionScorer
from feedrank.world.ground_truth import SCALES, GroundTruth, hour_and_month
from feedrank.world.layout import WorldLayout
from feedrank.world.simulated_users import Traffic

from record import machine, save

TERMS = {"none": (), "topic": ("topic",), "topic + sub-theme + tone": ("topic", "sub", "tone")}
NEWTON_STEPS = 30


@dataclass(frozen=True)
class Log:
    """View rows before a moment, sorted by user then time, as row indices of the truth. A
    view's label is its target: the like behind it follows within seconds, and a session starts
    after an hour without views, so no label tells of a like at or after a request."""

    users: np.ndarray
    posts: np.ndarray
    times: np.ndarray
    liked: np.ndarray

    @classmethod
    def read(cls, layout: WorldLayout, truth: GroundTruth, end: object) -> Log:
        rows = duckdb.execute(
            "SELECT user_id, post_id, timestamp, target FROM read_parquet($glob) "
            "WHERE action = 'view' AND timestamp < $end ORDER BY user_id, timestamp",
            {"glob": layout.feed_glob, "end": end},
        ).fetchnumpy()
        return cls(
            np.searchsorted(truth.user_ids, np.asarray(rows["user_id"], np.int64)),
            np.searchsorted(truth.post_ids, np.asarray(rows["post_id"], np.int64)),
            np.asarray(rows["timestamp"]).astype("datetime64[us]"),
            np.asarray(rows["target"], float),
        )

    def of_user(self, u: int, before: np.datetime64) -> np.ndarray:
        lo, hi = np.searchsorted(self.users, [u, u + 1])
        return np.arange(lo, hi)[self.times[lo:hi] < before]


def shared_logit(truth: GroundTruth, u, p, times) -> np.ndarray:
    """What many users and posts share, which a learner with millions of views can take as
    known (`GroundTruth.shared_at`)."""
    return truth.shared_at(u, p, *hour_and_month(times))


def post_scores(truth: GroundTruth, log: Log, days: np.ndarray, text_given: bool) -> dict:
    """Per day, each post's score estimated from its views before the day (every other term
    known): the world's prior, plus the exact text effect when `text_given`."""
    text = truth.post_score - truth.tables["quality"]  # sub-theme effect + tone
    given = text if text_given else np.zeros_like(text)
    precision = 1 / (SCALES["quality"] ** 2 + (0.0 if text_given else float(np.var(text))))
    offset = shared_logit(truth, log.users, log.posts, log.times) + given[log.posts]
    offset += truth.personal(log.users, log.posts)
    scores = {}
    for day in days:
        seen = log.times < np.datetime64(day, "us")
        posts, off, liked = log.posts[seen], offset[seen], log.liked[seen]
        score = np.zeros(len(truth.post_ids))
        for _ in range(NEWTON_STEPS):
            p = 1 / (1 + np.exp(-(off + score[posts])))
            gradient = np.bincount(posts, p - liked, len(score)) + precision * score
            score -= gradient / (np.bincount(posts, p * (1 - p), len(score)) + precision)
        scores[np.datetime64(day, "D")] = given + score
    return scores


class Learner:
    """Ranks the catalogue with the world's form: shared terms known, each post's score from
    `scores` (true, or estimated per day), the user's `terms` estimated from `log`. Without
    `demographics` the demographics × topic term is not known: the topic term's prior widens by
    its spread and the user's log has to reveal it as part of the topic taste."""

    def __init__(
        self,
        truth: GroundTruth,
        log: Log,
        scores: dict | None,
        terms: tuple,
        demographics: bool = True,
    ) -> None:
        self.truth, self.log, self.scores, self.terms = truth, log, scores, terms
        self.catalogue = np.arange(len(truth.post_ids))
        self.columns = self.design(self.catalogue, terms)
        demo = truth.demo
        # the term a learner without demographics does not know, per user and topic
        self.unknown = np.zeros_like(demo) if demographics else demo - demo.mean(axis=0)
        topic_var = SCALES["taste"] ** 2 + (0.0 if demographics else demo.var(axis=0))
        var = {"topic": list(np.broadcast_to(topic_var, demo.shape[1]))}
        var |= {"sub": [SCALES["taste_sub"] ** 2] * truth.taste_sub.shape[1]}
        var["tone"] = [SCALES["taste_sent"] ** 2]
        self.precision = 1 / np.array([SCALES["bias"] ** 2, *(v for t in terms for v in var[t])])

    def shared(self, u, p: np.ndarray, times: np.ndarray) -> np.ndarray:
        return shared_logit(self.truth, u, p, times) - self.unknown[u, self.truth.post_topic[p]]

    def design(self, p: np.ndarray, terms: tuple) -> np.ndarray:
        """Columns of the user's own terms for posts p: bias, then each term's indicators."""
        t = self.truth
        parts = [np.ones((len(p), 1))]
        if "topic" in terms:
            parts.append(np.eye(t.taste.shape[1])[t.post_topic[p]])
        if "sub" in terms:
            parts.append(np.eye(t.taste_sub.shape[1])[t.post_sub[p]])
        if "tone" in terms:
            parts.append(t.post_sent[p, None].astype(float))
        return np.hstack(parts)

    def post_score(self, at: np.datetime64) -> np.ndarray:
        return self.truth.post_score if self.scores is None else self.scores[at.astype("<M8[D]")]

    def own_terms(self, u: int, at: np.datetime64) -> np.ndarray:
        """MAP of the user's terms from their views before `at`."""
        rows = self.log.of_user(u, at)
        theta = np.zeros(len(self.precision))
        if not self.terms or not len(rows):
            return theta
        p = self.log.posts[rows]
        x = self.design(p, self.terms)
        offset = self.shared(u, p, self.log.times[rows]) + self.post_score(at)[p]
        for _ in range(NEWTON_STEPS):
            q = 1 / (1 + np.exp(-(offset + x @ theta)))
            hessian = (x * (q * (1 - q))[:, None]).T @ x + np.diag(self.precision)
            step = np.linalg.solve(
                hessian, x.T @ (q - self.log.liked[rows]) + self.precision * theta
            )
            theta -= step
            if np.abs(step).max() < 1e-6:
                break
        return theta

    def __call__(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), len(self.catalogue)))
        for i, (user, at) in enumerate(zip(users, times)):
            u = int(np.searchsorted(self.truth.user_ids, user))
            shared = self.shared(u, self.catalogue, np.full(len(out[i]), at))
            out[i] = shared + self.post_score(at) + self.columns @ self.own_terms(u, at)
        return out


def first_feed(
    layout: WorldLayout,
    windows: Windows,
    truth: GroundTruth,
    online: OnlineFeatures,
    learners: dict,
    repository,
    n: int,
) -> dict:
    held_out = logged_requests(
        layout, windows.eval_start, windows.eval_end, horizon=HORIZON, limit=n, seed=0
    )
    rankers = dict(learners) | {"random": random_ranker(truth.post_ids, 0)}
    for model in ("control", "test") if repository else ():
        latest = latest_metadata(repository / model)
        if latest is None:
            raise SystemExit(f"{repository / model}: no published version")
        scorer = VersionScorer(online, repository / model / str(latest[0]), threads=1)
        rankers[f"published {model} (version {latest[0]})"] = model_ranker(
            scorer.inputs, scorer.probabilities, truth.post_ids
        )
    _, simulated = measure(rankers, online, held_out, truth.post_ids, truth, progress=True)
    top, base = simulated["oracle"].mean(), simulated["random"].mean()
    return {
        "sessions": len(held_out),
        "rows": {
            name: {
                "simulated_hit_rate": float(v.mean()),
                "share": float((v.mean() - base) / (top - base)),
            }
            for name, v in simulated.items()
        },
    }


def week(
    truth: GroundTruth, online: OnlineFeatures, days: np.ndarray, learners: dict, users: int
) -> dict:
    """The replay's loop (`feedrank evaluate`'s traffic for seed 0) under each learner."""
    traffic = Traffic.plan(truth.user_ids, users, days, 0)
    frames = {
        name: per_user(
            run_loop(
                truth,
                traffic,
                ranked_lists(online, traffic.requests, truth.post_ids, learner, True, name),
            )
        )
        for name, learner in learners.items()
    }
    metrics = ("likes", EXPECTED_LIKES, "hit_rate", EXPECTED_HIT)
    names = list(learners)
    return {
        "users": len(frames[names[0]]),
        "requests": len(traffic.requests),
        "means": {n: {m: float(f[m].mean()) for m in metrics} for n, f in frames.items()},
        "differences": {
            f"{b} − {a}": {
                m: asdict(stats.paired(frames[a][m].to_numpy(), frames[b][m].to_numpy()))
                for m in metrics
            }
            for a, b in zip(names, names[1:])
        },
    }


def learners(truth: GroundTruth, log: Log, days: np.ndarray) -> tuple[dict, dict]:
    """The first feed's learners and the week's."""
    estimated = post_scores(truth, log, days, text_given=False)
    text_given = post_scores(truth, log, days, text_given=True)
    by_terms = {name: Learner(truth, log, estimated, terms) for name, terms in TERMS.items()}
    oracle = oracle_ranker(truth, truth.post_ids)
    first = {
        "oracle": oracle,
        "posts' scores true, no user terms": Learner(truth, log, None, ()),
        "posts' scores from the log, text effect given, no user terms": Learner(
            truth, log, text_given, ()
        ),
    } | {f"posts' scores from the log, user terms: {n}": r for n, r in by_terms.items()}
    first |= {
        f"the same without demographics, user terms: {n}": Learner(
            truth, log, estimated, terms, demographics=False
        )
        for n, terms in TERMS.items()
    }
    return first, {f"user terms: {n}": r for n, r in by_terms.items()} | {"oracle": oracle}


def markdown(r: dict) -> str:
    f, w = r["first_feed"], r["week"]
    lines = [
        f"Learners that know the world's form (windows {r['windows']}).",
        "",
        f"First feed, {f['sessions']:,} held-out sessions:",
        "",
        "| ranker | simulated hit rate@5 | share of the oracle's lift |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {n} | {v['simulated_hit_rate']:.4f} | {v['share']:.1%} |" for n, v in f["rows"].items()
    ]
    lines += [
        "",
        f"A week of feeds (the replay's loop, {w['users']:,} users, {w['requests']:,} requests), "
        "posts' scores from the log:",
        "",
        "| learner | likes per user | expected likes | hit rate@5 | expected hit rate@5 |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {v['likes']:.2f} | {v[EXPECTED_LIKES]:.2f} | {v['hit_rate']:.4f} | "
        f"{v[EXPECTED_HIT]:.4f} |"
        for n, v in w["means"].items()
    ]
    lines += [
        "",
        "| paired difference | likes per user | expected likes | hit rate@5 "
        "| expected hit rate@5 |",
    ]
    lines += ["|---|---|---|---|---|"]
    for name, d in w["differences"].items():
        cells = [
            f"{d[m]['difference']:+.4f} [{d[m]['low']:+.4f}, {d[m]['high']:+.4f}], "
            f"p = {d[m]['p_value']:.3g}"
            for m in ("likes", EXPECTED_LIKES, "hit_rate", EXPECTED_HIT)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["first_feed"]["rows"]
    names = [n for n in rows if n != "random"]
    shares = [100 * rows[n]["share"] for n in names[::-1]]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(names) + 1.2))
    bars = ax.barh(names[::-1], shares, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in shares], padding=3)
    ax.set_xlabel("share of the oracle's lift over random, first feed (%)")
    ax.set_xlim(min(70.0, min(shares) - 2), 104)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("data/world"))
    parser.add_argument("--repository", type=Path, help="add its latest versions to the table")
    parser.add_argument("--requests", type=int, default=2000, help="held-out sessions")
    parser.add_argument("--replay-users", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="60 sessions, 30 users")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    requests, users = (60, 30) if args.quick else (args.requests, args.replay_users)
    layout = WorldLayout(args.world)
    windows = world_windows(layout)
    truth, online = GroundTruth.load(args.world), OnlineFeatures.load(args.world)
    # the learners read the log up to the held-out window's end, each only before its moment
    log = Log.read(layout, truth, windows.eval_end)
    days = np.arange(np.datetime64(windows.eval_start, "D"), np.datetime64(windows.eval_end, "D"))
    first, weekly = learners(truth, log, days)
    result = {
        "machine": machine(),
        "windows": windows.describe(),
        "first_feed": first_feed(layout, windows, truth, online, first, args.repository, requests),
        "week": week(truth, online, days, weekly, users),
    }
    name = "learnable_ceiling" + ("-quick" if args.quick else "")
    save(result, args.out, name, markdown(result), plot)


if __name__ == "__main__":
    main()
