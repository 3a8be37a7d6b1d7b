"""Feature lists: each model's ordered inputs and where each value comes from."""

from __future__ import annotations

from dataclasses import dataclass

from feedrank.features.history import GROUPINGS, POST_COLUMNS, USER_COLUMNS, group_columns

# user: the user's own row; post: the post's row; time: the request's moment; history: the
# user's past by user, user × group, and the post's past up to the request's day; recent: the
# post's activity in the hours before the request's minute; affinity: user × post taste
SOURCES = ("user", "post", "history", "time", "recent", "affinity")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    source: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"feature {self.name!r}: unknown source {self.source!r}")

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "source": self.source}


def parse_specs(items: list[dict] | list[FeatureSpec]) -> list[FeatureSpec]:
    return [i if isinstance(i, FeatureSpec) else FeatureSpec(i["name"], i["source"]) for i in items]


def history_columns(groupings: tuple[str, ...], *, post: bool = True) -> list[str]:
    names = list(USER_COLUMNS)
    for grouping in groupings:
        names += group_columns(grouping)
    return names + (list(POST_COLUMNS) if post else [])


def groupings_used(names: list[str]) -> list[str]:
    """The post groupings (topic, cluster) whose history columns appear among `names`."""
    return [g for g in GROUPINGS if set(group_columns(g)) & set(names)]


def by_source(specs: list[FeatureSpec], source: str) -> list[tuple[int, str]]:
    return [(i, s.name) for i, s in enumerate(specs) if s.source == source]
