"""The serving snapshot of a world's features, and per-model request matrices.

`OnlineFeatures.load(W)` reads the user table and maps the stored history once at start-up;
`ModelInputs` prepares a model's post columns once and per request fills only the user, time and
history columns, with the same `History` blocks that computed the training set.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from feedrank.errors import FeedrankError
from feedrank.features.affinity import COLUMNS as AFFINITY_COLUMNS
from feedrank.features.affinity import Affinity, vector_columns
from feedrank.features.audience import Audience, attribute_codes
from feedrank.features.exposure import STEP as EXPOSURE_STEP
from feedrank.features.exposure import Exposure
from feedrank.features.history import (
    GROUPINGS,
    POST_COLUMNS,
    TEXT_CLUSTER_COLUMNS,
    Grouping,
    History,
    audience_columns,
    group_columns,
)
from feedrank.features.history_store import load_history
from feedrank.features.layout import FeaturesLayout
from feedrank.features.ranking_request import (
    GroupColumns,
    Kind,
    Layout,
    RankingRequest,
    Snapshot,
)
from feedrank.features.recency import COLUMNS as RECENT_COLUMNS
from feedrank.features.recency import as_of, recency_block
from feedrank.features.specs import (
    FeatureSpec,
    by_source,
    groupings_used,
    history_columns,
    parse_specs,
)
from feedrank.features.timefeatures import COLUMNS as TIME_COLUMNS
from feedrank.features.timefeatures import time_block

DAY_CACHE = 4  # days of post snapshots kept per model
HOUR_CACHE = 12  # hours of the posts' recent activity kept per model (a few MB each)
# minutes of an exposure column kept per model (8 bytes a post): a batch of the sessions that
# choose the exposure term, for each column the candidate terms read, fits
MINUTE_CACHE = 64
AUDIENCE_CACHE = 8  # groupings' audience tables kept (a few MB each)
TEXT_CLUSTER = "text_cluster"  # post column: the post's fine cluster in its model's text space


class UnknownUser(FeedrankError, KeyError):
    """A user id the world's user table does not have."""


@dataclass
class OnlineFeatures:
    user_ids: np.ndarray  # int64, sorted
    user_columns: list[str]
    user_matrix: np.ndarray  # float32[n_users, n_user_columns]
    history: History
    cutoff: np.datetime64  # no event at or after it is known
    _audiences: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _audience_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, world: Path, *, cutoff: np.datetime64 | None = None) -> OnlineFeatures:
        """The world's user table and its stored history (as known before `cutoff`, when
        given; with every event otherwise)."""
        files = FeaturesLayout(Path(world) / "features")
        files.require()
        users = pl.read_parquet(files.users)
        history = load_history(files.history)
        if cutoff is not None:
            history = history.before(_at(cutoff))
        elif history.last_event is not None:
            cutoff = history.last_event + np.timedelta64(1, "us")
        else:
            cutoff = history.epoch
        return cls(
            users["user_id"].to_numpy().astype(np.int64),
            [c for c in users.columns if c != "user_id"],
            users.drop("user_id").to_numpy().astype(np.float32),
            history,
            _at(cutoff),
        )

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user in `user_matrix`, -1 for an unknown user."""
        rows = np.minimum(np.searchsorted(self.user_ids, user_ids), self.user_ids.size - 1)
        return np.where(self.user_ids[rows] == user_ids, rows, -1)

    def audience(self, grouping: Grouping) -> Audience:
        """The audience tables of a grouping of posts, built once per grouping (by its codes:
        two versions' groups may differ) and shared by every model and thread."""
        with self._audience_lock:
            if grouping.digest not in self._audiences:
                codes = attribute_codes(self.user_columns, self.user_matrix)
                audience = Audience.build(self.history, codes, self.user_rows, grouping)
                _remember(self._audiences, grouping.digest, audience, AUDIENCE_CACHE)
            return self._audiences[grouping.digest]

    def reuse_audience(self, earlier: Grouping, grown: Grouping) -> None:
        """A grouping grown by posts without events shares `earlier`'s tables, when built: no
        event of the added posts is in them to count."""
        with self._audience_lock:
            audience = self._audiences.get(earlier.digest)
            if audience is not None:
                _remember(self._audiences, grown.digest, audience, AUDIENCE_CACHE)

    def audience_lift(
        self, grouping: Grouping, users: np.ndarray, groups: np.ndarray, times: np.ndarray
    ) -> np.ndarray:
        """Each (user, group)'s audience lift as of the start of the day of `times`."""
        return self.audience(grouping).lift(
            self.user_rows(users), groups, self.history.to_ms(times)
        )

    def has_user(self, user_id: int) -> bool:
        return bool(self.user_rows(np.array([user_id]))[0] >= 0)

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        return self.history.liked_before(user_id, _at(at))

    def likes_before(self, user_id: int, at: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """(post ids, times) of the user's likes before `at`, oldest first."""
        return self.history.likes_before(user_id, _at(at))


def uses_audience(grouping: str, names: set[str]) -> bool:
    """Whether a model reading the columns `names` reads a grouping's audience columns (the
    others get a lift of 1, and no tables are built for them)."""
    return bool(names & set(audience_columns(grouping)))


def group_codes(posts: pl.DataFrame, grouping: str) -> np.ndarray:
    """Dense array by post id: the post's group code under `grouping`, -1 for no post."""
    ids = posts["post_id"].to_numpy().astype(np.int64)
    codes = np.full(int(ids.max()) + 1 if ids.size else 1, -1, dtype=np.int64)
    codes[ids] = posts[GROUPINGS[grouping]].to_numpy().astype(np.int64)
    return codes


def text_cluster_codes(posts: pl.DataFrame) -> np.ndarray | None:
    """Dense array by post id: the post's fine text cluster (-1 for no post); None when the
    post table has no `text_cluster` column."""
    if TEXT_CLUSTER not in posts.columns:
        return None
    ids = posts["post_id"].to_numpy().astype(np.int64)
    codes = np.full(int(ids.max()) + 1 if ids.size else 1, -1, dtype=np.int64)
    codes[ids] = posts[TEXT_CLUSTER].to_numpy().astype(np.int64)
    return codes


class ModelInputs:
    """One model's input matrix for a request: every candidate post, in `post_ids` order."""

    def __init__(
        self,
        online: OnlineFeatures,
        feature_specs: list[dict] | list[FeatureSpec],
        post_features: pl.DataFrame | Path,
        exposure: Exposure | None = None,
        *,
        lineage: object | None = None,
        warm: bool = True,
    ) -> None:
        posts = (
            post_features
            if isinstance(post_features, pl.DataFrame)
            else pl.read_parquet(post_features)
        )
        self.online, self.posts = online, posts
        self.exposure = exposure or Exposure()
        self.specs = parse_specs(feature_specs)
        self.feature_names = [s.name for s in self.specs]
        self.post_ids = posts["post_id"].to_numpy().astype(np.int64)
        _check_available(self.specs, online, posts)
        self._base = np.zeros((self.post_ids.size, len(self.specs)), dtype=np.float32)
        for position, name in by_source(self.specs, "post"):
            self._base[:, position] = posts[name].to_numpy()
        user = by_source(self.specs, "user")
        self._user_positions = np.array([p for p, _ in user], dtype=np.int64)
        self._user_sources = np.array(
            [online.user_columns.index(n) for _, n in user], dtype=np.int64
        )
        self._text_clusters = text_cluster_codes(posts)
        self._plan_history(posts)
        self._bases_by_day: OrderedDict = OrderedDict()
        self._recent = by_source(self.specs, "recent")
        self._snapshots_by_hour: OrderedDict = OrderedDict()
        self._token = object()  # tells this object's snapshots from any other's
        # shared by the inputs grown from one another by added posts (Snapshot.family)
        self._lineage = lineage or object()
        # the scoring threads share these caches: one at a time in them (a new hour's snapshot
        # is built once, by whichever thread asks first)
        self._caches = threading.RLock()
        self._shares_by_minute: OrderedDict = OrderedDict()
        self._affinity = by_source(self.specs, "affinity")
        affinity = Affinity.of_posts(online.history, posts) if self._affinity else None
        # with the candidates' unit vectors, gathered once
        self._tastes = None if affinity is None else (affinity, affinity.candidates(self.post_ids))
        self.layout = self._layout()
        if warm:
            self.matrix(int(online.user_ids[0]), online.cutoff)  # the day's snapshot, built now

    def _plan_history(self, posts: pl.DataFrame) -> None:
        """Sort the time and history columns by how often their values change: per request
        (one value for every candidate), per group of posts, or per day (cached)."""
        history = by_source(self.specs, "history")
        # per grouping: its user × group indexes, and each candidate's group
        self._groupings = []
        for name in groupings_used([n for _, n in history]):
            grouping = self.online.history.grouping(name, group_codes(posts, name))
            columns = set(group_columns(name))
            self._groupings.append(
                (
                    grouping,
                    grouping.codes[self.post_ids],
                    [(p, n) for p, n in history if n in columns],
                )
            )
        per_post = {n for g, _, _ in self._groupings for n in group_columns(g.name)}
        # the groupings whose audience tables a request reads
        names = {n for _, n in history}
        self._audience_groupings = {
            g.name for g, _, _ in self._groupings if uses_audience(g.name, names)
        }
        daily = {*POST_COLUMNS, *TEXT_CLUSTER_COLUMNS}
        self._daily = [(p, n) for p, n in history if n in daily]
        self._constant = by_source(self.specs, "time") + [
            (p, n) for p, n in history if n not in per_post and n not in daily
        ]

    def _layout(self) -> Layout:
        kinds: list[Kind] = ["post"] * len(self.specs)  # post, recent, and the posts' daily history
        for position, _ in [*by_source(self.specs, "user"), *self._constant]:
            kinds[position] = "request"
        for _, _, positions in self._groupings:
            for position, _ in positions:
                kinds[position] = "pair"
        for position, _ in self._affinity:
            kinds[position] = "dense"
        if not self._groupings:
            return Layout(tuple(kinds), np.zeros(self.post_ids.size, np.int64), 1)
        codes = np.stack([groups for _, groups, _ in self._groupings], axis=1)
        uniques, post_group = np.unique(codes, axis=0, return_inverse=True)
        return Layout(tuple(kinds), post_group.reshape(-1).astype(np.int64), len(uniques))

    @classmethod
    def from_version_dir(
        cls, online: OnlineFeatures, version_dir: Path, metadata: dict | None = None
    ) -> ModelInputs:
        """A published version's inputs; `metadata` is its metadata.json when already read."""
        if metadata is None:
            metadata = json.loads((Path(version_dir) / "metadata.json").read_text())
        return cls(
            online,
            metadata["features"],
            Path(version_dir) / "post_features.parquet",
            Exposure.from_dict(metadata.get("exposure")),
        )

    def with_posts(self, rows: pl.DataFrame) -> ModelInputs:
        """These inputs with more candidates after the present ones: `rows` are the new posts'
        post features (their version's `TextPipeline.post_table`). Their history is what the
        world's history holds of them (nothing, for a post never seen). The cached snapshots
        are extended by the new posts' rows only."""
        posts = pl.concat([self.posts, rows.select(self.posts.columns)], how="vertical_relaxed")
        grown = ModelInputs(
            self.online, self.specs, posts, self.exposure, lineage=self._lineage, warm=False
        )
        grown._extend_caches(self)
        return grown

    def _extend_caches(self, earlier: ModelInputs) -> None:
        """`earlier`'s cached bases, which are this catalogue's first rows, with the rows of
        the posts added since, and its groupings' audience tables. Not when an added post has
        events: a text cluster's rate, a column of every post of the cluster, and the audience
        tables count them (they are then computed anew)."""
        added = slice(earlier.post_ids.size, None)
        if self.online.history.seen(self.post_ids[added]):
            return
        for (grown, _, _), (before, _, _) in zip(self._groupings, earlier._groupings, strict=True):
            self.online.reuse_audience(before, grown)
        with earlier._caches:
            days = list(earlier._bases_by_day.items())
            hours = list(earlier._snapshots_by_hour.items())
        for day, base in days:
            self._bases_by_day[day] = np.vstack([base, self._day_rows(day, added)])
        for hour, snapshot in hours:
            rows = self._hour_rows(hour, self._day_base(_at(hour, "D"))[added], added)
            self._snapshots_by_hour[hour] = self._snapshot(hour, np.vstack([snapshot.base, rows]))

    def has_post(self, post_id: int) -> bool:
        return bool((self.post_ids == post_id).any())

    def ranking_scores(
        self, probabilities: np.ndarray, at: np.datetime64, exposure: Exposure | None = None
    ) -> np.ndarray:
        """What the feed ranks by: P(like | shown), adjusted by an exposure term (the
        version's unless another is given)."""
        exposure = self.exposure if exposure is None else exposure
        if exposure.column is None or not exposure.active:
            return probabilities
        return exposure.scores(probabilities, self.recent_column(exposure.column, at))

    def recent_column(self, name: str, at: np.datetime64) -> np.ndarray:
        """One `recent` column for every candidate post as of `at`'s minute (the exposure
        term's step; cached: requests of one minute share it)."""
        minute = as_of(np.array([at]), EXPOSURE_STEP)[0]
        with self._caches:
            values = self._shares_by_minute.get((name, minute))
            if values is None:
                values = recency_block(
                    self.online.history,
                    self.post_ids,
                    np.full(self.post_ids.size, minute),
                    EXPOSURE_STEP,
                    columns=(name,),
                )[name]
                _remember(self._shares_by_minute, (name, minute), values, MINUTE_CACHE)
            return values

    def matrix(self, user_id: int, at: np.datetime64) -> np.ndarray:
        """float32[n_posts, n_features] for `user_id` at world time `at`: the training set's
        values bit for bit."""
        return self.request(user_id, at).matrix()

    def request(self, user_id: int, at: np.datetime64) -> RankingRequest:
        """The request's parts: the hour's snapshot of the posts, the request's own columns
        (user, time, the user's own history), its history per group of posts, its affinity to
        each post."""
        row = self.online.user_rows(np.array([user_id]))[0]
        if row < 0:
            raise UnknownUser(f"unknown user_id {user_id}")
        at = _at(at)
        users, times = np.array([user_id], dtype=np.int64), np.array([at])
        values = {**time_block(times), **self.online.history.user_block(users, times)}
        constant = np.zeros(len(self.specs), dtype=np.float32)
        constant[self._user_positions] = self.online.user_matrix[row, self._user_sources]
        for position, name in self._constant:
            constant[position] = values[name][0]
        groups = self._group_columns(users, times, values["hist_user_like_rate"])
        dense = {}
        if self._tastes is not None:
            affinity, candidates = self._tastes
            block = affinity.request_block(user_id, at, candidates)
            dense = {position: block[name] for position, name in self._affinity}
        return RankingRequest(self._hour_snapshot(at), constant, groups, dense)

    def _hour_snapshot(self, at: np.datetime64) -> Snapshot:
        """The day's base with the posts' recent activity as of `at`'s hour (cached)."""
        if not self._recent:
            day = _at(at, "D")
            return self._snapshot(day, self._day_base(day))
        hour = as_of(np.array([at]))[0]
        with self._caches:
            snapshot = self._snapshots_by_hour.get(hour)
            if snapshot is not None:
                self._snapshots_by_hour.move_to_end(hour)  # least recently used goes first
            else:
                base = self._hour_rows(hour, self._day_base(_at(at, "D")), slice(None))
                snapshot = self._snapshot(hour, base)
                _remember(self._snapshots_by_hour, hour, snapshot, HOUR_CACHE)
            return snapshot

    def _snapshot(self, moment: np.datetime64, base: np.ndarray) -> Snapshot:
        return Snapshot((self._token, moment), base, self.layout, (self._lineage, moment))

    def _hour_rows(self, hour: np.datetime64, day_rows: np.ndarray, rows: slice) -> np.ndarray:
        """The day's base at `rows` with those posts' recent activity as of `hour`."""
        base = day_rows.copy()
        posts = self.post_ids[rows]
        block = recency_block(
            self.online.history,
            posts,
            np.full(posts.size, hour),
            columns=tuple(name for _, name in self._recent),
        )
        for position, name in self._recent:
            base[:, position] = block[name]
        return base

    def _group_columns(
        self, users: np.ndarray, times: np.ndarray, rate: np.ndarray
    ) -> tuple[GroupColumns, ...]:
        """The user's history on every group of each grouping the model uses."""
        columns = []
        for grouping, candidate_groups, positions in self._groupings:
            groups = np.arange(grouping.n_groups)
            each_user, each_time = np.repeat(users, groups.size), np.repeat(times, groups.size)
            audience = (
                self.online.audience_lift(grouping, each_user, groups, each_time)
                if grouping.name in self._audience_groupings
                else np.ones(groups.size)
            )
            block = self.online.history.group_block(
                grouping, each_user, groups, each_time, np.repeat(rate, groups.size), audience
            )
            columns.append(
                GroupColumns(
                    candidate_groups, {position: block[name] for position, name in positions}
                )
            )
        return tuple(columns)

    def _day_base(self, day: np.datetime64) -> np.ndarray:
        """Post columns and the posts' history as of the start of `day`, zeros elsewhere."""
        with self._caches:
            base = self._bases_by_day.get(day)
            if base is None:
                base = self._day_rows(day, slice(None))
                _remember(self._bases_by_day, day, base)
            return base

    def _day_rows(self, day: np.datetime64, rows: slice) -> np.ndarray:
        """The day's base at `rows`: each post's row depends on that post alone."""
        base = self._base[rows].copy()
        posts = self.post_ids[rows]
        block = self.online.history.post_block(posts, np.full(posts.size, day), self._text_clusters)
        for position, name in self._daily:
            base[:, position] = block[name]
        return base


def _at(value: object, unit: str = "us") -> np.datetime64:
    """`value` (a datetime64 of any unit, a datetime, an ISO string) as datetime64[unit]; numpy's
    stubs do not list the datetime64-to-unit form."""
    return np.datetime64(value, unit)  # type: ignore[call-overload]


def _remember(cache: OrderedDict, key: object, value: object, limit: int = DAY_CACHE) -> None:
    """Keep the last `limit` entries (requests cluster around one "now")."""
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)


def _check_available(specs: list[FeatureSpec], online: OnlineFeatures, posts: pl.DataFrame) -> None:
    """A model trained on other feature tables (another world's countries, say) is refused
    with the names it misses, not with an error deep inside a request."""
    known = {
        "user": set(online.user_columns),
        "post": set(posts.columns),
        "time": set(TIME_COLUMNS),
        "history": set(history_columns(tuple(GROUPINGS)))
        | (set(TEXT_CLUSTER_COLUMNS) if TEXT_CLUSTER in posts.columns else set()),
        "recent": set(RECENT_COLUMNS),
        "affinity": set(AFFINITY_COLUMNS) if vector_columns(posts) else set(),
    }
    missing = [f"{s.name} ({s.source})" for s in specs if s.name not in known[s.source]]
    if missing:
        raise FeedrankError(f"model features not available here: {', '.join(missing)}")
