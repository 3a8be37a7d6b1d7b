"""Scores one request's candidate posts through the fast-path ONNX graph (server/fastpath_graph.py).

The tables reach onnxruntime through `add_external_initializers` (no protobuf copy). The session
copies them into its own memory (measured), so the numpy tables are dropped once it exists: the
ranker holds the tables once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from feedrank.errors import FeedrankError
from feedrank.features.ranking_request import RankingRequest, Snapshot
from feedrank.server.fastpath_graph import (
    DENSE_INPUT,
    PAIR_INPUT,
    REQUEST_INPUT,
    SCORES_OUTPUT,
    FastPath,
    Partition,
    Trees,
    build,
)


class FastRanker:
    """Raw CatBoost scores of every catalogue post for one request, in catalogue order."""

    def __init__(
        self,
        model: Path | Trees,
        post_matrix: np.ndarray,
        partition: Partition,
        post_group: np.ndarray | None = None,
        n_groups: int | None = None,
        *,
        threads: int = 1,
        **build_options,
    ) -> None:
        started = time.perf_counter()
        trees = model if isinstance(model, Trees) else Trees.from_cbm(_cbm(Path(model)))
        fastpath = build(
            trees,
            np.asarray(post_matrix, np.float32),
            partition,
            post_group,
            n_groups,
            **build_options,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        values = {n: ort.OrtValue.ortvalue_from_numpy(t) for n, t in fastpath.tables.items()}
        options.add_external_initializers(list(values), list(values.values()))
        self.session = ort.InferenceSession(
            fastpath.graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.table_bytes = fastpath.table_bytes
        self.fastpath: FastPath = replace(fastpath, tables={})
        self.n_posts = len(post_matrix)
        self.post_group = (
            np.zeros(self.n_posts, np.int64) if post_group is None else np.asarray(post_group)
        )
        # the first post of each group carries that group's pair values (row 0 for a group
        # without posts: its values are never read)
        codes, first = np.unique(self.post_group, return_index=True)
        self._group_rows = np.zeros(self.fastpath.n_groups, np.int64)
        self._group_rows[codes] = first
        self.build_seconds = time.perf_counter() - started

    @classmethod
    def for_snapshot(cls, model: Path | Trees, snapshot: Snapshot, **options) -> FastRanker:
        """The ranker of a feed snapshot: its post columns, column kinds and post groups."""
        layout = snapshot.layout
        return cls(
            model,
            snapshot.base,
            Partition(layout.kinds),
            layout.post_group,
            layout.n_groups,
            **options,
        )

    def scores(
        self,
        request_row: np.ndarray,
        pair_values: np.ndarray | None = None,
        dense_values: np.ndarray | None = None,
    ) -> np.ndarray:
        """request_row: float32[request columns]; pair_values: float32[n_groups, pair columns];
        dense_values: float32[N, dense columns] in catalogue order."""
        fp = self.fastpath
        request = np.ascontiguousarray(request_row, np.float32).reshape(-1)
        pair = (
            np.zeros((fp.n_groups, 0), np.float32)
            if pair_values is None
            else np.ascontiguousarray(pair_values, np.float32)
        )
        dense = (
            np.zeros((self.n_posts, 0), np.float32)
            if dense_values is None
            else np.ascontiguousarray(dense_values, np.float32)
        )
        expected = (
            (len(fp.request_columns),),
            (fp.n_groups, len(fp.pair_columns)),
            (self.n_posts, len(fp.dense_columns)),
        )
        if (request.shape, pair.shape, dense.shape) != expected:
            raise FeedrankError(
                f"expected request, pair and dense values of shapes "
                f"{[list(e) for e in expected]}, got {list(request.shape)}, "
                f"{list(pair.shape)} and {list(dense.shape)}"
            )
        feeds = {REQUEST_INPUT: request, PAIR_INPUT: pair}
        if len(fp.dense_columns):
            feeds[DENSE_INPUT] = dense
        (raw,) = self.session.run([SCORES_OUTPUT], feeds)
        return raw

    def scores_for_request(self, request: RankingRequest) -> np.ndarray:
        """The scores of a feed request from its parts, the full matrix never assembled."""
        fp = self.fastpath
        pair = dense = None
        if len(fp.pair_columns):
            pair = np.stack([request.column(c, self._group_rows) for c in fp.pair_columns], axis=1)
        if len(fp.dense_columns):
            dense = np.stack([request.column(c) for c in fp.dense_columns], axis=1)
        return self.scores(request.constant[fp.request_columns], pair, dense)

    def scores_for_matrix(self, features: np.ndarray) -> np.ndarray:
        """The same scores from a full model-input matrix [N, F] (as ModelInputs.matrix builds
        it): the request row is row 0's request columns, a group's pair values its first post's."""
        fp = self.fastpath
        pair = features[self._group_rows][:, fp.pair_columns]
        return self.scores(features[0, fp.request_columns], pair, features[:, fp.dense_columns])


def _cbm(path: Path) -> Path:
    candidate = path / "model.cbm" if path.is_dir() else path
    if not candidate.is_file():
        raise FeedrankError(f"{candidate}: no CatBoost model to build the fast path from")
    return candidate
