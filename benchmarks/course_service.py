"""The course-style reference service: what the course's final projects serve, for comparison.

FastAPI + pandas + CatBoost's native `predict_proba` on a per-request DataFrame, liked posts
filtered with `isin` over a pandas table of likes, and each recommended post's text looked up
with `.loc`. It loads the same world, the same router file and the same `model.cbm` versions as
feedrank, so for the same user and time it must give the same posts (benchmarks/end_to_end.py
checks that before it measures anything).

The one piece not written the course's way is the feature row: the point-in-time history
columns come from `feedrank.features.online.ModelInputs` (a course project would have a
static user table instead), so that both services rank from identical inputs; the DataFrame,
the scoring call, the filtering and the look-ups are the course's.

    python benchmarks/course_service.py --world W --repository R --port 8001
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import uvicorn
from catboost import CatBoostClassifier
from fastapi import FastAPI, HTTPException, Query

from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.server.router import parse_router
from feedrank.world.layout import WorldLayout


def create_app(world: Path, repository: Path) -> FastAPI:
    layout = WorldLayout(world)
    posts = pd.read_parquet(layout.posts).set_index("post_id")
    likes = duckdb.sql(
        f"SELECT user_id, post_id, timestamp FROM read_parquet("
        f"'{layout.feed_glob}') WHERE action = 'like'"
    ).df()
    router = parse_router((repository / "router.toml").read_text(), lambda m, v: None)
    online = OnlineFeatures.load(world)
    models, inputs = {}, {}
    for group in router.groups:
        version_dir = repository / group.model / str(group.version)
        model = CatBoostClassifier(thread_count=1)
        model.load_model(str(version_dir / "model.cbm"))
        models[group.name] = model
        inputs[group.name] = ModelInputs.from_version_dir(online, version_dir)
    app = FastAPI()

    @app.get("/post/recommendations/")
    def recommended_posts(
        id: int, time: datetime | None = None, limit: int = Query(5, ge=1, le=100)
    ) -> dict:
        at = naive_utc(time or datetime.now(UTC))
        group = router.assign(id)
        if not online.has_user(id):
            raise HTTPException(404, "unknown user")
        features = inputs[group.name]
        df = pd.DataFrame(
            features.matrix(id, np.datetime64(at, "us")), columns=features.feature_names
        )
        df["post_id"] = features.post_ids
        df["score"] = models[group.name].predict_proba(df[features.feature_names])[:, 1]
        liked = likes[(likes.user_id == id) & (likes.timestamp < at)].post_id
        df = df[~df.post_id.isin(liked)]
        ranked = df.sort_values(["score", "post_id"], ascending=[False, True])
        top = ranked.head(limit)
        return {
            "exp_group": group.name,
            "recommendations": [
                {"id": int(pid), "text": posts.loc[pid, "text"], "topic": posts.loc[pid, "topic"]}
                for pid in top.post_id
            ],
            # for the benchmark's answer check: near-ties may order differently in float32
            "scores": {
                int(pid): float(s)
                for pid, s in zip(ranked.post_id[: limit + 20], ranked.score[: limit + 20])
            },
        }

    return app


def naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.world, args.repository), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
