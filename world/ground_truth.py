"""The planted like model of a generated world: the true probability that user u likes post p at t.

    logit p(u, p, t) = base
        + demo[u, topic(p)]            demographics x topic: age band, gender, os, source, country
        + taste[u, topic(p)]           the user's own topic taste that demographics do not explain
        + taste_sub[u, sub(p)]         the user's taste over sub-themes (horror films, vaccines...)
        + taste_sent[u] * sent(p)      whether the user likes raves or rants
        + sub_effect[sub(p)]           meaning of the text beyond its topic label
        + sent_effect * sent(p)        tone: sent in {-1, 0, +1} (a film review that loves or pans)
        + hour_topic[hour(t), topic(p)]  covid in the morning, films at night...
        + month[month(t)]              October 0; higher from November
        + quality[p]                   how good the post is, whoever reads it
        + bias[u]                      how easily the user likes anything (does not change rankings)

Every user term is constant over time, so history reveals it; there is no per-(user, post) noise
beyond the Bernoulli draw. `taste`, `taste_sub` and `taste_sent` are learnable only from a user's
history; `sub`/`sent` only from the text (what sentence embeddings catch better than word counts).

Saved under `W/ground_truth/`: `params.json` (scalars and small tables), `users.parquet` (user_id,
bias, demo_<topic>, taste_<topic>, taste_sub_<k>, taste_sent), `posts.parquet` (post_id, topic,
subtheme, sentiment, quality), and `held_back_posts.parquet`: posts written like the catalogue's
(post_id, text, topic, subtheme, sentiment, quality) that the world never published, for a
simulation to publish while it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from feedrank.errors import FeedrankError
from feedrank.world import catalog

AGE_BANDS = np.array([18, 25, 35, 50])  # band edges: 14-17, 18-24, 25-34, 35-49, 50+
# rows: age bands; columns: catalog.TOPICS (movie covid business sport politics tech ent.)
AGE_TOPIC = np.array(
    [
        [0.45, -0.55, -0.60, 0.20, -0.70, 0.30, 0.45],
        [0.30, -0.25, -0.20, 0.15, -0.35, 0.25, 0.30],
        [0.00, 0.05, 0.25, 0.05, 0.05, 0.15, 0.00],
        [-0.25, 0.30, 0.35, -0.05, 0.35, -0.10, -0.20],
        [-0.45, 0.55, 0.20, -0.20, 0.55, -0.40, -0.35],
    ]
)
GENDER_TOPIC = np.array(
    [  # gender 0, gender 1
        [0.10, 0.10, -0.15, -0.40, -0.05, -0.30, 0.30],
        [-0.08, -0.08, 0.12, 0.32, 0.04, 0.25, -0.25],
    ]
)
HOUR_PEAK = np.array([21, 8, 9, 19, 8, 14, 22])  # the hour each topic is liked most
HOUR_AMPLITUDE = 0.30
MONTH_EFFECT = {10: 0.0, 11: 0.22, 12: 0.32}
SENT_EFFECT = 0.20
HELD_BACK = "held_back_posts.parquet"
SCALES = {
    "quality": 0.30,
    "taste": 0.45,
    "taste_sub": 0.35,
    "taste_sent": 0.35,
    "sub_effect": 0.25,
    "bias": 0.35,
    "demo_minor": 0.12,
}


@dataclass(frozen=True)
class GroundTruth:
    base: float
    user_ids: np.ndarray  # sorted int64
    demo: np.ndarray  # [U, T] demographics × topic
    taste: np.ndarray  # [U, T] the user's own topic taste
    taste_sub: np.ndarray  # [U, S]
    taste_sent: np.ndarray  # [U]
    bias: np.ndarray  # [U]
    post_ids: np.ndarray  # sorted int64
    post_topic: np.ndarray  # [P] topic index
    post_sub: np.ndarray  # [P] sub-theme index (catalog.SUBTHEME_INDEX)
    post_sent: np.ndarray  # [P] -1, 0, +1
    post_score: np.ndarray  # [P] quality + sub_effect + sent_effect * sent
    hour_topic: np.ndarray  # [24, T]
    tables: dict  # the drawn tables behind the fields (quality, sub_effect, ...; documentation)

    # -- querying ----------------------------------------------------------------------------
    def like_probability(self, user_ids, post_ids, times) -> np.ndarray:
        """True P(like) for broadcastable arrays of user ids, post ids and naive datetime64s."""
        # ids and times are converted in their own shapes; indexing then broadcasts them
        u = _index_of(self.user_ids, np.asarray(user_ids, np.int64), "user")
        p = _index_of(self.post_ids, np.asarray(post_ids, np.int64), "post")
        times = np.asarray(times, "datetime64[us]")
        hour, month = hour_and_month(times)
        shape = np.broadcast_shapes(u.shape, p.shape, times.shape)
        return np.broadcast_to(self.probability_at(u, p, hour, month), shape).copy()

    def sample_likes(self, user_ids, post_ids, times, rng: np.random.Generator) -> np.ndarray:
        """What simulated users do with the posts shown to them: True where they like it."""
        probability = self.like_probability(user_ids, post_ids, times)
        return rng.random(probability.shape) < probability

    def hit_probability(self, user_ids, post_lists, times) -> np.ndarray:
        """P(at least one like) per feed: `post_lists` [..., k] ranked lists, users/times [...]."""
        p = self.like_probability(
            np.asarray(user_ids)[..., None],
            post_lists,
            np.asarray(times, "datetime64[us]")[..., None],
        )
        return 1.0 - np.prod(1.0 - p, axis=-1)

    def probability_at(
        self, u: np.ndarray, p: np.ndarray, hour: np.ndarray, month: np.ndarray
    ) -> np.ndarray:
        """P(like) by row indices (users, posts), hour of day and calendar month."""
        return 1.0 / (1.0 + np.exp(-self.logit_at(u, p, hour, month)))

    def logit_at(self, u, p, hour, month) -> np.ndarray:
        """The logit of `probability_at`."""
        return self.shared_at(u, p, hour, month) + self.personal(u, p) + self.post_score[p]

    def shared_at(self, u, p, hour, month) -> np.ndarray:
        """The terms of the logit shared by many users and posts: the base rate, demographics ×
        topic, hour × topic and the month."""
        topic = self.post_topic[p]
        month_effect = np.select(
            [month == 11, month == 12], [MONTH_EFFECT[11], MONTH_EFFECT[12]], MONTH_EFFECT[10]
        )
        return self.base + self.demo[u, topic] + self.hour_topic[hour, topic] + month_effect

    def personal(self, u, p) -> np.ndarray:
        """The terms of the logit only the user's own history reveals: bias and tastes."""
        return (
            self.bias[u]
            + self.taste[u, self.post_topic[p]]
            + self.taste_sub[u, self.post_sub[p]]
            + self.taste_sent[u] * self.post_sent[p]
        )

    def calibrated(self, u, p, hour, month, target: float) -> GroundTruth:
        """The same world with `base` set so the mean P(like) over the given views is `target`."""
        rest = self.logit_at(u, p, hour, month) - self.base
        lo, hi = -10.0, 5.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(rest + mid)))) < target else (lo, mid)
        return replace(self, base=(lo + hi) / 2)

    # -- drawing -----------------------------------------------------------------------------
    @classmethod
    def draw(
        cls, users: pd.DataFrame, posts: pd.DataFrame, rng: np.random.Generator
    ) -> GroundTruth:
        """Draw the hidden parameters of users and posts (posts: topic, subtheme, sentiment)."""
        n_users, n_topics, n_subs = len(users), len(catalog.TOPICS), len(catalog.SUBTHEME_INDEX)
        s = SCALES
        country_topic = rng.normal(0, s["demo_minor"], (len(catalog.COUNTRIES), n_topics))
        os_topic = rng.normal(0, s["demo_minor"], (2, n_topics))
        source_topic = rng.normal(0, s["demo_minor"], (2, n_topics))
        demo = _demographics(users, country_topic, os_topic, source_topic)
        taste = rng.normal(0, s["taste"], (n_users, n_topics))
        sub_effect = rng.normal(0, s["sub_effect"], n_subs)
        quality = rng.normal(0, s["quality"], len(posts))
        hours = np.arange(24)[:, None]
        hour_topic = HOUR_AMPLITUDE * np.cos(2 * np.pi * (hours - HOUR_PEAK[None, :]) / 24)
        post_topic = posts["topic"].map({t: i for i, t in enumerate(catalog.TOPICS)}).to_numpy()
        post_sub = _subtheme_index(posts)
        post_sent = posts["sentiment"].to_numpy(np.int64)
        tables = {
            "country_topic": country_topic,
            "os_topic": os_topic,
            "source_topic": source_topic,
            "sub_effect": sub_effect,
            "quality": quality,
        }
        return cls(
            base=-2.0,
            user_ids=users["user_id"].to_numpy(np.int64),
            taste_sub=rng.normal(0, s["taste_sub"], (n_users, n_subs)),
            taste_sent=rng.normal(0, s["taste_sent"], n_users),
            bias=rng.normal(0, s["bias"], n_users),
            post_ids=posts["post_id"].to_numpy(np.int64),
            post_topic=post_topic,
            post_sub=post_sub,
            post_sent=post_sent,
            post_score=quality + sub_effect[post_sub] + SENT_EFFECT * post_sent,
            hour_topic=hour_topic,
            demo=demo,
            taste=taste,
            tables=tables,
        )

    def with_posts(self, posts: pd.DataFrame) -> GroundTruth:
        """This world with more posts (post_id after the catalogue's, topic, subtheme, sentiment,
        quality), liked by the same users under the same terms."""
        if len(posts) and posts["post_id"].min() <= self.post_ids[-1]:
            raise ValueError("added posts must have ids after the catalogue's")
        posts = posts.sort_values("post_id")  # ids are looked up by binary search
        sub, sent = _subtheme_index(posts), posts["sentiment"].to_numpy(np.int64)
        topics = {t: i for i, t in enumerate(catalog.TOPICS)}
        score = posts["quality"].to_numpy() + self.tables["sub_effect"][sub] + SENT_EFFECT * sent
        return replace(
            self,
            post_ids=np.concatenate([self.post_ids, posts["post_id"].to_numpy(np.int64)]),
            post_topic=np.concatenate([self.post_topic, posts["topic"].map(topics).to_numpy()]),
            post_sub=np.concatenate([self.post_sub, sub]),
            post_sent=np.concatenate([self.post_sent, sent]),
            post_score=np.concatenate([self.post_score, score]),
        )

    # -- persistence -------------------------------------------------------------------------
    @staticmethod
    def save_held_back(posts: pd.DataFrame, directory: Path, rng: np.random.Generator) -> None:
        """Keep `posts` (make_fresh_posts' table) out of the world with a quality of their own."""
        quality = rng.normal(0, SCALES["quality"], len(posts))
        posts.assign(quality=quality).to_parquet(directory / HELD_BACK, index=False)

    @staticmethod
    def held_back(world: Path) -> pd.DataFrame:
        """The posts the generated world at `world` held back, with their ground truth."""
        path = Path(world) / "ground_truth" / HELD_BACK
        if not path.exists():
            raise FeedrankError(
                f"{world} holds back no posts (`feedrank world generate --held-back-posts N` "
                "writes a world that does)"
            )
        return pd.read_parquet(path)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        t = self.tables
        topics, subs = catalog.TOPICS, catalog.SUBTHEME_INDEX
        users = {"user_id": self.user_ids, "bias": self.bias}
        users |= {f"demo_{x}": self.demo[:, i] for i, x in enumerate(topics)}
        users |= {f"taste_{x}": self.taste[:, i] for i, x in enumerate(topics)}
        users |= {f"taste_sub_{k}": self.taste_sub[:, k] for k in range(len(subs))}
        users["taste_sent"] = self.taste_sent
        pd.DataFrame(users).to_parquet(directory / "users.parquet", index=False)
        pd.DataFrame(
            {
                "post_id": self.post_ids,
                "topic": np.asarray(topics)[self.post_topic],
                "subtheme": [subs[k][1] for k in self.post_sub],
                "sentiment": self.post_sent,
                "quality": t["quality"],
            }
        ).to_parquet(directory / "posts.parquet", index=False)
        params = {
            "formula": __doc__.split("\n\n")[1],
            "base": self.base,
            "topics": list(topics),
            "subthemes": [f"{a}/{b}" for a, b in subs],
            "age_band_edges": AGE_BANDS.tolist(),
            "age_topic": AGE_TOPIC.tolist(),
            "gender_topic": GENDER_TOPIC.tolist(),
            "countries": list(catalog.COUNTRIES),
            "country_topic": t["country_topic"].tolist(),
            "os_order": ["Android", "iOS"],
            "os_topic": t["os_topic"].tolist(),
            "source_order": ["ads", "organic"],
            "source_topic": t["source_topic"].tolist(),
            "sub_effect": t["sub_effect"].tolist(),
            "sent_effect": SENT_EFFECT,
            "hour_topic": self.hour_topic.tolist(),
            "month_effect": {str(k): v for k, v in MONTH_EFFECT.items()},
            "scales": SCALES,
        }
        (directory / "params.json").write_text(json.dumps(params, indent=1))

    @classmethod
    def load(cls, world: Path) -> GroundTruth:
        """The ground truth of the generated world at `world` (raises if it has none)."""
        directory = Path(world) / "ground_truth"
        if not (directory / "params.json").exists():
            raise FeedrankError(f"{world} has no ground truth (only generated worlds have one)")
        params = json.loads((directory / "params.json").read_text())
        users = pd.read_parquet(directory / "users.parquet")
        posts = pd.read_parquet(directory / "posts.parquet")
        topics, n_subs = params["topics"], len(params["subthemes"])
        demo = users[[f"demo_{x}" for x in topics]].to_numpy()
        taste = users[[f"taste_{x}" for x in topics]].to_numpy()
        sub_effect = np.asarray(params["sub_effect"])
        post_sub = _subtheme_index(posts)
        post_sent = posts["sentiment"].to_numpy(np.int64)
        quality = posts["quality"].to_numpy()
        return cls(
            base=params["base"],
            user_ids=users["user_id"].to_numpy(np.int64),
            taste_sub=users[[f"taste_sub_{k}" for k in range(n_subs)]].to_numpy(),
            taste_sent=users["taste_sent"].to_numpy(),
            bias=users["bias"].to_numpy(),
            post_ids=posts["post_id"].to_numpy(np.int64),
            post_topic=posts["topic"].map({t: i for i, t in enumerate(topics)}).to_numpy(),
            post_sub=post_sub,
            post_sent=post_sent,
            post_score=quality + sub_effect[post_sub] + params["sent_effect"] * post_sent,
            hour_topic=np.asarray(params["hour_topic"]),
            demo=demo,
            taste=taste,
            tables={"quality": quality, "sub_effect": sub_effect}
            | {k: np.asarray(params[k]) for k in ("country_topic", "os_topic", "source_topic")},
        )


def hour_and_month(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hour of day and the calendar month (1-12) the like model reads from a time."""
    times = np.asarray(times, "datetime64[us]")
    hour = times.astype("datetime64[h]").astype(np.int64) % 24
    return hour, times.astype("datetime64[M]").astype(np.int64) % 12 + 1


def _demographics(users: pd.DataFrame, country_topic, os_topic, source_topic) -> np.ndarray:
    band = np.searchsorted(AGE_BANDS, users["age"].to_numpy(), side="right")
    country = users["country"].map({c: i for i, c in enumerate(catalog.COUNTRIES)}).to_numpy()
    return (
        AGE_TOPIC[band]
        + GENDER_TOPIC[users["gender"].to_numpy()]
        + os_topic[(users["os"] == "iOS").to_numpy(np.int64)]
        + source_topic[(users["source"] == "organic").to_numpy(np.int64)]
        + country_topic[country]
    )


def _subtheme_index(posts: pd.DataFrame) -> np.ndarray:
    index = {pair: k for k, pair in enumerate(catalog.SUBTHEME_INDEX)}
    return np.array([index[pair] for pair in zip(posts["topic"], posts["subtheme"])], np.int64)


def _index_of(sorted_ids: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    pos = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    unknown = sorted_ids[pos] != ids
    if unknown.any():
        raise FeedrankError(f"unknown {what} id {ids[unknown].flat[0]} (not in this world)")
    return pos
