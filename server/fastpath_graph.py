"""The ranking fast path: a CatBoost model specialised to one post catalogue, as an ONNX graph.

CatBoost's trees are oblivious: level d of tree t tests one feature against one border and the
leaf is Σ_d bit_d << d. For one feed request every candidate row shares its *request* columns
(user, time); *post* columns are fixed between catalogue updates; *pair* columns (user × topic
history, ...) depend on the post only through a small group code. So, per tree, the post bits
are known at load and only the request/pair bits change per request.

Build (once per catalogue): trees are put into groups; a group's request/pair conditions span
P_g patterns (a feature with k borders in the group contributes k+1 patterns, not 2^k: its bits
are a thermometer code). For every pattern and post the table holds the sum of the group's leaf
values; trees with post conditions only are folded into group 0. Tables are float32 (centred per
group) and summed in two float32 stages, so scores match CatBoost's double sums to ~1e-6.

Per request (the graph): conditions → one pattern index per (post group, tree group) with one
small MatMul; the posts are laid out in equal blocks, each within one post group, so a single
row Gather picks every block's G rows and two ReduceSums add them. The rows read are ~G × N
floats, one per tree group — the graph does no per-row tree work at all.
Merging trees into groups trades table memory (more patterns) for fewer rows read per request.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from feedrank.errors import FeedrankError
from feedrank.features.ranking_request import Kind

REQUEST_INPUT, PAIR_INPUT, DENSE_INPUT, SCORES_OUTPUT = "request", "pair", "dense", "scores"
TABLE, DENSE_TABLE = "table", "dense_table"
OPSET = 17


@dataclass(frozen=True)
class Partition:
    """Which kind each model input column is, in the model's feature order."""

    kinds: tuple[Kind, ...]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - {"request", "post", "pair", "dense"})
        if unknown:
            raise FeedrankError(f"unknown column kinds {unknown}: use request, post or pair")

    def columns(self, kind: Kind) -> np.ndarray:
        return np.flatnonzero(np.array(self.kinds) == kind)


@dataclass(frozen=True)
class Trees:
    """An oblivious CatBoost model as arrays; `leaves` already include the model's scale."""

    features: list[np.ndarray]  # per tree: feature index of each level
    borders: list[np.ndarray]  # per tree: border of each level (bit = value > border)
    leaves: list[np.ndarray]  # per tree: float64[2^depth]
    bias: float
    n_features: int

    @classmethod
    def from_json(cls, model: dict) -> Trees:
        if "oblivious_trees" not in model or model["features_info"].get("categorical_features"):
            raise FeedrankError("the fast path needs oblivious trees over float features only")
        for feature in model["features_info"]["float_features"]:
            if feature.get("nan_value_treatment") == "AsTrue" and feature.get("has_nans"):
                raise FeedrankError("the fast path treats NaN as below every border (Min)")
        scale, biases = model.get("scale_and_bias", [1.0, [0.0]])
        trees = model["oblivious_trees"]
        if any(len(t["leaf_values"]) != 2 ** len(t["splits"]) for t in trees):
            raise FeedrankError("the fast path needs a single-dimension model (one raw score)")
        return cls(
            features=[
                np.array([s["float_feature_index"] for s in t["splits"]], np.int64) for t in trees
            ],
            borders=[np.array([s["border"] for s in t["splits"]], np.float32) for t in trees],
            leaves=[scale * np.asarray(t["leaf_values"], np.float64) for t in trees],
            bias=float(biases[0]),
            n_features=len(model["features_info"]["float_features"]),
        )

    @classmethod
    def from_catboost(cls, model) -> Trees:
        """From a fitted CatBoost model object, through CatBoost's own JSON dump."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.json"
            model.save_model(str(path), format="json")
            return cls.from_json(json.loads(path.read_text()))

    @classmethod
    def from_cbm(cls, path: Path) -> Trees:
        from catboost import CatBoost

        model = CatBoost()
        model.load_model(str(path))
        return cls.from_catboost(model)


@dataclass
class Conditions:
    """The distinct request/pair conditions (feature, border) the trees test."""

    feature: list[int] = field(default_factory=list)
    border: list[float] = field(default_factory=list)
    index: dict[tuple[int, float], int] = field(default_factory=dict)

    def id(self, feature: int, border: float) -> int:
        key = (int(feature), float(border))
        if key not in self.index:
            self.index[key] = len(self.feature)
            self.feature.append(key[0])
            self.border.append(key[1])
        return self.index[key]


@dataclass(frozen=True)
class Group:
    """Trees sharing one table; `radix` maps each feature to its weight in the pattern index."""

    trees: list[int]
    conditions: list[int]  # condition ids, sorted by (feature, border)
    radix: dict[int, int]  # feature -> weight
    patterns: int


def _group(trees: list[int], conditions: set[int], conds: Conditions) -> Group:
    ordered = sorted(conditions, key=lambda c: (conds.feature[c], conds.border[c]))
    radix, weight = {}, 1
    for feature in dict.fromkeys(conds.feature[c] for c in ordered):
        radix[feature] = weight
        weight *= 1 + sum(conds.feature[c] == feature for c in ordered)
    return Group(sorted(trees), ordered, radix, weight)


def _log_patterns(members: np.ndarray, conds_of_feature: list[np.ndarray]) -> np.ndarray:
    """log(patterns) of the union of every pair of groups: [G, G].

    Σ_f log(1 + borders of f in the union): each group's own terms, corrected only on the
    pairs of groups that both test feature f (sparse: most groups test few features).
    """
    own = np.zeros(members.shape[0], np.float32)
    corrections = []
    for cols in conds_of_feature:
        block = members[:, cols].astype(np.float32)
        counts = block.sum(1)
        own += np.log1p(counts)
        holders = np.flatnonzero(counts)
        sub, c = block[holders], counts[holders]
        union = np.log1p(c[:, None] + c[None, :] - sub @ sub.T)
        corrections.append((holders, union - np.log1p(c)[:, None] - np.log1p(c)[None, :]))
    out = own[:, None] + own[None, :]
    for holders, correction in corrections:
        out[np.ix_(holders, holders)] += correction
    return out


def merge_groups(
    tree_conditions: list[set[int]],
    conds: Conditions,
    *,
    max_rows: int,
    merge_cost: float,
    max_patterns: int = 4096,
) -> list[Group]:
    """Greedy rounds of disjoint pair merges, cheapest first.

    A merge saves one row read per post per request and costs (patterns of the union − patterns
    of both) table rows. Rounds take merges costing at most a threshold that doubles, up to
    `merge_cost`, whenever a round finds none, so cheap merges go first; the total stays within
    `max_rows`. Trees with identical condition sets merge for free first.
    """
    by_set: dict[frozenset, list[int]] = {}
    for tree, cs in enumerate(tree_conditions):
        if cs:
            by_set.setdefault(frozenset(cs), []).append(tree)
    groups = [(trees, set(cs)) for cs, trees in by_set.items()]
    features = np.array(conds.feature)
    conds_of_feature = [np.flatnonzero(features == f) for f in np.unique(features)]
    threshold = min(1.0, merge_cost)
    while len(groups) > 1:
        merged, used = _merge_round(
            groups, conds, conds_of_feature, threshold, max_rows, max_patterns
        )
        if merged:
            groups = merged + [g for k, g in enumerate(groups) if k not in used]
        elif threshold < merge_cost:
            threshold = min(2 * threshold, merge_cost)
        else:
            break
    return [_group(t, cs, conds) for t, cs in groups]


def _merge_round(
    groups: list[tuple[list[int], set[int]]],
    conds: Conditions,
    conds_of_feature: list[np.ndarray],
    threshold: float,
    max_rows: int,
    max_patterns: int,
) -> tuple[list, set[int]]:
    members = np.zeros((len(groups), len(conds.feature)), bool)
    for i, (_, cs) in enumerate(groups):
        members[i, list(cs)] = True
    own = np.array([_group(t, cs, conds).patterns for t, cs in groups], np.float64)
    union = np.rint(np.exp(_log_patterns(members, conds_of_feature)))
    cost = union - own[:, None] - own[None, :]
    cost[union > max_patterns] = np.inf
    np.fill_diagonal(cost, np.inf)
    pairs = np.argwhere(np.triu(cost <= threshold, 1))
    pairs = pairs[np.argsort(cost[pairs[:, 0], pairs[:, 1]], kind="stable")]
    rows, merged = own.sum(), []
    used: set[int] = set()
    for i, j in pairs.tolist():
        if i in used or j in used or (cost[i, j] > 0 and rows + cost[i, j] > max_rows):
            continue
        used.update((i, j))
        rows += cost[i, j]
        merged.append((groups[i][0] + groups[j][0], groups[i][1] | groups[j][1]))
    return merged, used


@dataclass
class FastPath:
    """The specialised graph and the tables it reads (kept outside the protobuf)."""

    graph: onnx.ModelProto  # the tables are external initializers
    tables: dict[str, np.ndarray]  # "table": float32 [blocks × rows, block width];
    #                                  "dense_table": float32 [dense rows, N]
    groups: list[Group]  # tree groups read by post block
    dense_groups: list[Group]  # tree groups testing dense columns, read post by post
    n_groups: int  # post groups (rows of the pair input)
    request_columns: np.ndarray
    pair_columns: np.ndarray
    dense_columns: np.ndarray

    @property
    def table_bytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values())

    def embedded(self) -> onnx.ModelProto:
        """A self-contained copy with the tables as ordinary initializers."""
        model = onnx.ModelProto()
        model.CopyFrom(self.graph)
        kept = [i for i in model.graph.initializer if i.name not in self.tables]
        del model.graph.initializer[:]
        model.graph.initializer.extend(
            kept + [numpy_helper.from_array(t, n) for n, t in self.tables.items()]
        )
        return model


def build(
    trees: Trees,
    post_matrix: np.ndarray,
    partition: Partition,
    post_group: np.ndarray | None = None,
    n_groups: int | None = None,
    *,
    max_table_bytes: int = 384 << 20,
    # on the default world's models, 64 leaves control 42 tree groups (61 MB) and 256 leaves 30
    # (122 MB): fewer table rows read per request buy back the serving throughput that their
    # pair columns cost (docs/fastpath.md)
    merge_cost: float = 256.0,
) -> FastPath:
    """Specialise `trees` to the catalogue `post_matrix` (float32 [N, F]; only post columns read).

    `post_group` (int [N], codes 0..n_groups-1) says which row of the per-request pair values
    applies to each post; without pair columns every post is in group 0.
    """
    n_posts = post_matrix.shape[0]
    if len(partition.kinds) != trees.n_features or post_matrix.shape[1] != trees.n_features:
        raise FeedrankError(
            f"the model has {trees.n_features} features; the partition has "
            f"{len(partition.kinds)} and the post matrix {post_matrix.shape[1]}"
        )
    post_group = np.zeros(n_posts, np.int64) if post_group is None else np.asarray(post_group)
    n_groups = int(post_group.max(initial=-1)) + 1 if n_groups is None else n_groups
    if n_posts and (post_group.min() < 0 or post_group.max() >= n_groups):
        raise FeedrankError(f"post groups must be codes in 0..{n_groups - 1}")
    blocks = Blocks.of(post_group, n_groups)
    conds = Conditions()
    budget = max_table_bytes // 2 if len(partition.columns("dense")) else max_table_bytes
    groups, dense_groups = _tree_groups(
        trees,
        partition,
        conds,
        merge_cost=merge_cost,
        max_rows=budget // (4 * max(blocks.slots, 1)),
        max_dense_rows=(max_table_bytes - budget) // (4 * max(n_posts, 1)),
    )
    table, offset = _table(groups, trees, conds, post_matrix, blocks)
    dense_table, dense_offset = _dense_table(dense_groups, trees, conds, post_matrix, post_group)
    graph = _graph(
        groups,
        dense_groups,
        conds,
        partition,
        blocks,
        post_group,
        table,
        dense_table,
        n_groups,
        offset + dense_offset,
    )
    tables = {TABLE: table} | ({DENSE_TABLE: dense_table} if dense_groups else {})
    return FastPath(
        graph,
        tables,
        groups,
        dense_groups,
        n_groups,
        partition.columns("request"),
        partition.columns("pair"),
        partition.columns("dense"),
    )


@dataclass(frozen=True)
class Blocks:
    """Posts cut into blocks of `width` slots, each block within one post group, so that one
    row Gather over [blocks × rows, width] serves every post group at once. The width is the
    largest that pads the catalogue by at most a quarter."""

    group: np.ndarray  # [n_blocks] post group of each block
    slot: np.ndarray  # [N] slot (block × width + position) of each catalogue post
    width: int

    @property
    def slots(self) -> int:
        return len(self.group) * self.width

    @classmethod
    def of(cls, post_group: np.ndarray, n_groups: int) -> Blocks:
        sizes = np.bincount(post_group, minlength=n_groups)
        widths = np.arange(1, max(int(sizes.max(initial=0)), 1) + 1)
        slots = (-(-sizes[None, :] // widths[:, None]) * widths[:, None]).sum(1)
        width = int(widths[slots <= 1.25 * max(len(post_group), 1)].max())
        per_group = -(-sizes // width)
        first_block = np.cumsum(per_group) - per_group
        order = np.argsort(post_group, kind="stable")
        rank = np.empty(len(post_group), np.int64)
        rank[order] = np.arange(len(post_group)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        slot = (first_block[post_group] + rank // width) * width + rank % width
        return cls(np.repeat(np.arange(n_groups), per_group), slot, width)


def _tree_groups(
    trees: Trees, partition: Partition, conds: Conditions, *, max_dense_rows: int, **merge_options
) -> tuple[list[Group], list[Group]]:
    """Tree groups read by post block, and those testing a dense column (read post by post).
    A tree's post conditions are resolved in the tables; its others index them."""
    kinds = list(partition.kinds)
    tree_conditions = [
        {conds.id(f, b) for f, b in zip(fs.tolist(), bs.tolist()) if kinds[f] != "post"}
        for fs, bs in zip(trees.features, trees.borders)
    ]
    dense = [any(kinds[conds.feature[c]] == "dense" for c in cs) for cs in tree_conditions]
    dense_groups = merge_groups(
        [cs if d else set() for cs, d in zip(tree_conditions, dense)],
        conds,
        **merge_options | {"max_rows": max_dense_rows},
    )
    tree_conditions = [set() if d else cs for cs, d in zip(tree_conditions, dense)]
    groups = merge_groups(tree_conditions, conds, **merge_options) or [_group([], set(), conds)]
    folded = [t for t, cs in enumerate(tree_conditions) if not cs and not dense[t]]
    groups[0] = Group(
        groups[0].trees + folded, groups[0].conditions, groups[0].radix, groups[0].patterns
    )
    # rows are summed in two float32 stages of ~√G terms each (error ~√G·ulp instead of G);
    # empty groups (one zero row each) pad G to a multiple of the stage size
    stage = int(np.ceil(np.sqrt(len(groups))))
    return groups + [_group([], set(), conds)] * (-len(groups) % stage), dense_groups


def _dense_table(
    groups: list[Group], trees: Trees, conds: Conditions, posts: np.ndarray, post_group: np.ndarray
) -> tuple[np.ndarray, float]:
    """float32 [rows, N]: group after group, each [patterns, N] with the posts in `_dense_order`.
    A post group's posts share the request/pair part of their pattern and differ only in the
    dense part, so a request reads each group's posts from a few rows, front to back (a
    post-major layout cost one cache line per post and group). Centred per group, as `_table`."""
    order = _dense_order(post_group)
    parts, offset = [np.zeros((0, posts.shape[0]), np.float32)], 0.0
    for group in groups:
        values = _group_table(group, trees, conds, posts)
        centre = float(values.mean()) if values.size else 0.0
        offset += centre
        parts.append((values - centre)[:, order].astype(np.float32))
    return np.concatenate(parts), offset


def _dense_order(post_group: np.ndarray) -> np.ndarray:
    """The dense tables' post order: catalogue order within each post group."""
    return np.argsort(post_group, kind="stable")


def _table(
    groups: list[Group], trees: Trees, conds: Conditions, posts: np.ndarray, blocks: Blocks
) -> tuple[np.ndarray, float]:
    """float32 [blocks × rows, width] (padding slots zero) and the constant left out of it.

    Groups are centred so their float32 values stay small (rounding ~1e-8); the centres and the
    bias come back once, in float64, at the end of the graph. Filled group by group, so the
    build holds the table plus one group's float64 table.
    """
    rows = sum(g.patterns for g in groups)
    table = np.zeros((len(blocks.group), rows, blocks.width), np.float32)
    offset, start = trees.bias, 0
    for group in groups:
        values = _group_table(group, trees, conds, posts)
        centre = float(values.mean()) if values.size else 0.0
        offset += centre
        slotted = np.zeros((group.patterns, blocks.slots))
        slotted[:, blocks.slot] = values - centre
        table[:, start : start + group.patterns] = slotted.reshape(
            group.patterns, -1, blocks.width
        ).transpose(1, 0, 2)
        start += group.patterns
    return table.reshape(-1, blocks.width), offset


def _group_table(group: Group, trees: Trees, conds: Conditions, posts: np.ndarray) -> np.ndarray:
    """float64 [patterns, N]: Σ over the group's trees of the leaf each (pattern, post) reaches."""
    pattern = np.arange(group.patterns)
    # how many of the group's borders each pattern's feature value exceeds
    count = {
        f: (pattern // w) % (1 + sum(conds.feature[c] == f for c in group.conditions))
        for f, w in group.radix.items()
    }
    rank = {
        c: 1
        + [conds.border[k] for k in group.conditions if conds.feature[k] == conds.feature[c]].index(
            conds.border[c]
        )
        for c in group.conditions
    }
    out = np.zeros((group.patterns, posts.shape[0]))
    for t in group.trees:
        pattern_leaf = np.zeros(group.patterns, np.int64)
        post_leaf = np.zeros(posts.shape[0], np.int64)
        for level, (f, b) in enumerate(zip(trees.features[t], trees.borders[t])):
            c = conds.index.get((int(f), float(b)))
            if c is not None and c in rank:
                pattern_leaf |= (count[int(f)] >= rank[c]).astype(np.int64) << level
            else:
                post_leaf |= (posts[:, f] > b).astype(np.int64) << level
        out += trees.leaves[t][pattern_leaf[:, None] | post_leaf[None, :]]
    return out


def _external(name: str, table: np.ndarray) -> onnx.TensorProto:
    """A placeholder the session fills with `add_external_initializers` (no protobuf copy)."""
    tensor = onnx.TensorProto(
        name=name, data_type=TensorProto.FLOAT, dims=table.shape, data_location=TensorProto.EXTERNAL
    )
    for key, value in (("location", f"{name}.bin"), ("offset", "0"), ("length", str(table.nbytes))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _graph(
    groups: list[Group],
    dense_groups: list[Group],
    conds: Conditions,
    partition: Partition,
    blocks: Blocks,
    post_group: np.ndarray,
    table: np.ndarray,
    dense_table: np.ndarray,
    n_groups: int,
    offset: float,
) -> onnx.ModelProto:
    """Conditions → pattern rows [n_groups, G] → per block Gather + ReduceSum → scores [N];
    plus, for the tree groups testing dense columns, one table value per (post, group)."""
    every = groups + dense_groups
    # each group's first row in its table (the static table's, or the dense table's)
    offsets = np.concatenate(
        [np.cumsum([0] + [g.patterns for g in part])[:-1] for part in (groups, dense_groups)]
    ).astype(np.float32)
    nodes, inits = (
        [],
        [
            numpy_helper.from_array(offsets, "offsets"),
            numpy_helper.from_array(np.zeros((n_groups, len(every)), np.float32), "zeros"),
        ],
    )
    terms = ["zeros"]
    inputs_of: tuple[tuple[Kind, str, int], ...] = (
        ("request", REQUEST_INPUT, 0),
        ("pair", PAIR_INPUT, 1),
    )
    for kind, source, axis in inputs_of:
        part = _conditions(kind, source, axis, every, conds, partition)
        if part is not None:
            nodes += part[0]
            inits += part[1]
            terms.append(f"{kind}_rows")
    terms.append("offsets")
    for i in range(1, len(terms)):
        nodes.append(
            helper.make_node(
                "Add", [terms[i - 1] if i == 1 else f"sum{i - 1}", terms[i]], [f"sum{i}"]
            )
        )
    total = f"sum{len(terms) - 1}"
    if dense_groups:  # the request/pair rows of both kinds of tree group, split
        for name, (start, stop) in (
            ("static", (0, len(groups))),
            ("dense", (len(groups), len(every))),
        ):
            inits += [
                numpy_helper.from_array(np.array([start], np.int64), f"{name}_start"),
                numpy_helper.from_array(np.array([stop], np.int64), f"{name}_stop"),
            ]
            nodes.append(
                helper.make_node(
                    "Slice", [total, f"{name}_start", f"{name}_stop", "axis_1"], [f"{name}_sum"]
                )
            )
        total = "static_sum"
    nodes.append(helper.make_node("Cast", [total], ["rows"], to=TensorProto.INT64))
    stage = int(np.ceil(np.sqrt(len(groups))))
    rows = sum(g.patterns for g in groups)
    arrays = {
        "block_group": blocks.group,
        "block_base": (np.arange(len(blocks.group)) * rows)[:, None],
        "axis_1": np.array([1]),
        "flat": np.array([-1]),
        "slot": blocks.slot,
        "stages": np.array([len(blocks.group), stage, len(groups) // stage, blocks.width]),
    }
    inits += [numpy_helper.from_array(v.astype(np.int64), k) for k, v in arrays.items()]
    inits.append(numpy_helper.from_array(np.array(offset, np.float64), "offset"))
    nodes += [
        helper.make_node("Gather", ["rows", "block_group"], ["block_rows"], axis=0),
        helper.make_node("Add", ["block_rows", "block_base"], ["table_rows"]),
        helper.make_node("Gather", [TABLE, "table_rows"], ["picked"], axis=0),
        helper.make_node("Reshape", ["picked", "stages"], ["staged"]),
        helper.make_node("ReduceSum", ["staged", "axis_1"], ["inner"], keepdims=0),
        helper.make_node("ReduceSum", ["inner", "axis_1"], ["by_block"], keepdims=0),
        helper.make_node("Reshape", ["by_block", "flat"], ["by_slot"]),
        helper.make_node("GatherElements", ["by_slot", "slot"], ["centred"], axis=0),
        helper.make_node("Cast", ["centred"], ["centred64"], to=TensorProto.DOUBLE),
    ]
    static = "centred64"
    if dense_groups:
        part = _dense_nodes(dense_groups, conds, partition, post_group, "dense_sum")
        nodes += part[0] + [helper.make_node("Add", ["centred64", "dense64"], ["all64"])]
        inits += part[1]
        static = "all64"
    nodes.append(helper.make_node("Add", [static, "offset"], [SCORES_OUTPUT]))
    inputs = [
        helper.make_tensor_value_info(
            REQUEST_INPUT, TensorProto.FLOAT, [len(partition.columns("request"))]
        ),
        helper.make_tensor_value_info(
            PAIR_INPUT, TensorProto.FLOAT, [n_groups, len(partition.columns("pair"))]
        ),
    ]
    if len(partition.columns("dense")):
        inputs.append(
            helper.make_tensor_value_info(
                DENSE_INPUT, TensorProto.FLOAT, [len(post_group), len(partition.columns("dense"))]
            )
        )
    inits += [_external(TABLE, table)] + (
        [_external(DENSE_TABLE, dense_table)] if dense_groups else []
    )
    graph = helper.make_graph(
        nodes,
        "feedrank_fastpath",
        inputs,
        [helper.make_tensor_value_info(SCORES_OUTPUT, TensorProto.DOUBLE, [len(blocks.slot)])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _conditions(
    kind: Kind, source: str, axis: int, groups: list[Group], conds: Conditions, partition: Partition
) -> tuple[list, list] | None:
    """Nodes turning one input's tested columns into each tree group's pattern row offset:
    Gather the columns, compare with the borders, MatMul the bits by the radix weights."""
    kinds = np.array(partition.kinds)
    position = {int(c): i for i, c in enumerate(partition.columns(kind))}
    ids = [c for c in range(len(conds.feature)) if kinds[conds.feature[c]] == kind]
    if not ids:
        return None
    row_of = {c: i for i, c in enumerate(ids)}
    weight = np.zeros((len(ids), len(groups)), np.float32)
    for g, group in enumerate(groups):
        for c in group.conditions:
            if c in row_of:
                weight[row_of[c], g] = group.radix[conds.feature[c]]
    cols = np.array([position[conds.feature[c]] for c in ids], np.int64)
    inits = [
        numpy_helper.from_array(cols, f"{kind}_cols"),
        numpy_helper.from_array(
            np.array([conds.border[c] for c in ids], np.float32), f"{kind}_borders"
        ),
        numpy_helper.from_array(weight, f"{kind}_weights"),
    ]
    nodes = [
        helper.make_node("Gather", [source, f"{kind}_cols"], [f"{kind}_x"], axis=axis),
        helper.make_node("Greater", [f"{kind}_x", f"{kind}_borders"], [f"{kind}_b"]),
        helper.make_node("Cast", [f"{kind}_b"], [f"{kind}_bits"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", [f"{kind}_bits", f"{kind}_weights"], [f"{kind}_rows"]),
    ]
    return nodes, inits


def _dense_nodes(
    groups: list[Group],
    conds: Conditions,
    partition: Partition,
    post_group: np.ndarray,
    group_rows: str,
) -> tuple[list, list]:
    """Per (dense tree group, post): its table row = the group's request/pair row for the
    post's group + the dense columns' part; one GatherElements along the rows of the dense
    table [rows, N] reads every (group, post) value at once. The posts go in the table's order
    ([G, N] throughout) and their sum back to the catalogue's."""
    kinds = np.array(partition.kinds)
    position = {int(c): i for i, c in enumerate(partition.columns("dense"))}
    ids = [c for c in range(len(conds.feature)) if kinds[conds.feature[c]] == "dense"]
    weight = np.zeros((len(groups), len(ids)), np.float32)
    for g, group in enumerate(groups):
        for i, c in enumerate(ids):
            if c in group.conditions:
                weight[g, i] = group.radix[conds.feature[c]]
    n = len(post_group)
    order = _dense_order(post_group)
    # element gathers are GatherElements: onnxruntime's Gather copies element by element
    # (~20 ns each), GatherElements loops (~2 ns)
    inits = [
        numpy_helper.from_array(
            np.array([position[conds.feature[c]] for c in ids], np.int64), "dense_cols"
        ),
        numpy_helper.from_array(
            np.array([conds.border[c] for c in ids], np.float32)[:, None], "dense_borders"
        ),
        numpy_helper.from_array(weight, "dense_weights"),
        numpy_helper.from_array(
            np.broadcast_to(order, (len(position), n)).astype(np.int64), "dense_order"
        ),
        numpy_helper.from_array(np.argsort(order).astype(np.int64), "catalogue_order"),
        numpy_helper.from_array(
            np.broadcast_to(post_group[order].astype(np.int64), (len(groups), n)).copy(),
            "post_groups",
        ),
        numpy_helper.from_array(np.array([0], np.int64), "axis_0"),
    ]
    nodes = [
        helper.make_node("Transpose", [DENSE_INPUT], ["dense_by_column"], perm=[1, 0]),
        helper.make_node("GatherElements", ["dense_by_column", "dense_order"], ["dense_t"], axis=1),
        helper.make_node("Gather", ["dense_t", "dense_cols"], ["dense_x"], axis=0),
        helper.make_node("Greater", ["dense_x", "dense_borders"], ["dense_b"]),
        helper.make_node("Cast", ["dense_b"], ["dense_bits"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["dense_weights", "dense_bits"], ["dense_rows"]),
        helper.make_node("Transpose", [group_rows], ["group_rows_t"], perm=[1, 0]),
        helper.make_node("GatherElements", ["group_rows_t", "post_groups"], ["post_rows"], axis=1),
        helper.make_node("Add", ["post_rows", "dense_rows"], ["dense_row_f"]),
        helper.make_node("Cast", ["dense_row_f"], ["dense_row"], to=TensorProto.INT32),
        helper.make_node("GatherElements", [DENSE_TABLE, "dense_row"], ["dense_picked"], axis=0),
        # G centred float32 terms per post: within ~G ulp, as the static table's stages
        helper.make_node("ReduceSum", ["dense_picked", "axis_0"], ["dense_sorted"], keepdims=0),
        helper.make_node(
            "GatherElements", ["dense_sorted", "catalogue_order"], ["dense_catalogue"], axis=0
        ),
        helper.make_node("Cast", ["dense_catalogue"], ["dense64"], to=TensorProto.DOUBLE),
    ]
    return nodes, inits
