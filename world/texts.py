"""The posts of the world (`post_text_df`): distinct English texts written from our own templates.

Film reviews (a few hundred characters, loving or panning a film of some genre), covid posts
(tweet-like, under 140 characters, hashtags and mentions, hopeful or fed up) and news articles
("Headline\\n\\nBody", roughly 900-3,500 characters; tech and politics the longest).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedrank.world import catalog
from feedrank.world import vocabulary as V


def make_posts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`post_text_df` plus the hidden columns subtheme and sentiment (-1, 0, +1)."""
    lo, hi = catalog.POST_ID_SPAN
    span = max(n, round(n * (hi - lo + 1) / catalog.COURSE_POSTS))
    post_id = np.sort(rng.choice(span, n, replace=False)) + lo
    return _posts(post_id, set(), rng)


def make_fresh_posts(
    n: int, after_id: int, taken: set[str], rng: np.random.Generator
) -> pd.DataFrame:
    """`n` more posts like `make_posts`' with ids after `after_id` and texts not in `taken`: the
    posts a world holds back, to be published while an experiment runs."""
    return _posts(np.arange(after_id + 1, after_id + 1 + n), set(taken), rng)


def _posts(post_id: np.ndarray, seen: set[str], rng: np.random.Generator) -> pd.DataFrame:
    n = len(post_id)
    topic = np.repeat(np.array(catalog.TOPICS), catalog.scaled_counts(catalog.TOPIC_COUNTS, n))
    topic = rng.permutation(topic)
    subtheme = np.array(
        [
            catalog.SUBTHEMES[t][k % len(catalog.SUBTHEMES[t])]
            for t, k in zip(topic, rng.integers(0, 1 << 30, n))
        ],
        dtype=object,
    )
    draw = rng.random(n)
    shares = [
        catalog.SENTIMENT_SHARES.get(t, catalog.SENTIMENT_SHARES.get(s, (0.0, 0.0)))
        for t, s in zip(topic, subtheme)
    ]
    pos, neg = (np.array([share[i] for share in shares]) for i in (0, 1))
    sentiment = np.select([draw < pos, draw < pos + neg], [1, -1], 0).astype(np.int64)
    texts = [
        _distinct(seen, lambda t=t, s=s, m=m: write(t, s, m, rng))
        for t, s, m in zip(topic, subtheme, sentiment)
    ]
    return pd.DataFrame(
        {
            "post_id": post_id.astype(np.int64),
            "text": texts,
            "topic": topic,
            "subtheme": subtheme.astype(str),
            "sentiment": sentiment,
        }
    )


def _distinct(seen: set[str], draw) -> str:
    text = draw()
    while text in seen:
        text = draw()
    seen.add(text)
    return text


def write(topic: str, subtheme: str, sentiment: int, rng: np.random.Generator) -> str:
    if topic == "movie":
        return movie_review(subtheme, sentiment, rng)
    if topic == "covid":
        return covid_post(subtheme, sentiment, rng)
    return news_article(topic, subtheme, rng)


def _pick(rng: np.random.Generator, pool, k: int | None = None):
    if k is None:
        return pool[rng.integers(len(pool))]
    return [pool[i] for i in rng.choice(len(pool), k, replace=False)]


def _person(rng: np.random.Generator) -> str:
    return f"{_pick(rng, V.FIRST_NAMES)} {_pick(rng, V.LAST_NAMES)}"


def movie_review(genre: str, sentiment: int, rng: np.random.Generator) -> str:
    love = sentiment > 0
    title = (
        f"The {_pick(rng, V.TITLE_ADJ)} {_pick(rng, V.TITLE_NOUN)}"
        if rng.random() < 0.6
        else f"{_pick(rng, V.TITLE_NOUN)} of the {_pick(rng, V.TITLE_NOUN)}"
    )
    opener = _pick(rng, V.LOVE_OPENERS if love else V.PAN_OPENERS).format(
        film=f'"{title}"', genre=_pick(rng, V.GENRE[genre])
    )
    details = [
        _pick(rng, V.LOVE_DETAIL if love else V.PAN_DETAIL).format(detail=d)
        for d in _pick(rng, V.GENRE_DETAIL[genre], int(rng.integers(1, 4)))
    ]
    body = " ".join(d[0].upper() + d[1:] + "." for d in details)
    if rng.random() < 0.7:
        body = _pick(rng, V.PREMISE_LEADS).format(premise=_pick(rng, V.PREMISE[genre])) + " " + body
    acting = _pick(rng, V.LOVE_ACTING if love else V.PAN_ACTING).format(
        actor=_person(rng), director=_person(rng)
    )
    closer = _pick(rng, V.LOVE_CLOSERS if love else V.PAN_CLOSERS)
    return " ".join([opener, body, acting, closer])


def covid_post(subtheme: str, sentiment: int, rng: np.random.Generator) -> str:
    mood = _pick(rng, {1: V.COVID_UP, -1: V.COVID_DOWN, 0: V.COVID_FLAT}[sentiment])
    text = f"{mood}: {_pick(rng, V.COVID_CORE[subtheme])}."
    if rng.random() < 0.5:
        text += " " + _pick(rng, V.COVID_TAILS)
    extras = [
        " ".join(_pick(rng, V.COVID_TAGS, int(rng.integers(1, 4)))),
        _pick(rng, V.HANDLES),
        "https://t.co/" + "".join(_pick(rng, "abcdefghijkmnpqrstuvwxyz0123456789", 10)),
    ]
    for extra in (extras[i] for i in rng.permutation(len(extras))):
        if len(text) + len(extra) < 140:
            text += " " + extra
    return text


def news_article(topic: str, subtheme: str, rng: np.random.Generator) -> str:
    subjects, verbs, contexts = V.NEWS[(topic, subtheme)]

    def event() -> str:
        return f"{_pick(rng, subjects)} {_pick(rng, verbs)} {_pick(rng, contexts)}"

    headline = event()
    long_topic = topic in ("tech", "politics")
    paragraphs = []
    for _ in range(int(rng.integers(6, 14) if long_topic else rng.integers(4, 9))):
        sentences = [_sentence(event(), rng) for _ in range(int(rng.integers(2, 4)))]
        paragraphs.append(" ".join(sentences))
    paragraphs.append(_pick(rng, V.NEWS_CLOSERS))
    return headline[0].upper() + headline[1:] + "\n\n" + "\n\n".join(paragraphs)


def _sentence(event: str, rng: np.random.Generator) -> str:
    kind = rng.integers(4)
    if kind == 0:
        source, said = _pick(rng, V.NEWS_SOURCES), _pick(rng, V.NEWS_SAID)
        return f"{event[0].upper()}{event[1:]}, {source} {said}."
    if kind == 1:
        return f'"{_pick(rng, V.NEWS_QUOTES)}," {_person(rng)} {_pick(rng, V.NEWS_SAID)}.'
    if kind == 2:
        return f"{_pick(rng, V.NEWS_LINKERS)} {event}."
    share = int(rng.integers(2, 60))
    return (
        f"According to {_pick(rng, V.NEWS_SOURCES)}, {event}, a change of {share}% "
        f"on the same period a year ago."
    )
