"""The users of the world (`user_data`): demographics drawn to the course's marginals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedrank.world import catalog

# the largest real cities first in each country; the long tail gets generated names
CAPITALS = {
    "Russia": [
        "Moscow",
        "Saint Petersburg",
        "Novosibirsk",
        "Yekaterinburg",
        "Kazan",
        "Nizhny Novgorod",
        "Chelyabinsk",
        "Samara",
        "Omsk",
        "Rostov",
    ],
    "Ukraine": ["Kyiv", "Kharkiv", "Odesa", "Dnipro", "Lviv"],
    "Belarus": ["Minsk", "Gomel", "Mogilev", "Vitebsk"],
    "Kazakhstan": ["Almaty", "Nur-Sultan", "Shymkent", "Karaganda"],
    "Turkey": ["Istanbul", "Ankara", "Izmir", "Bursa"],
    "Finland": ["Helsinki", "Espoo", "Tampere", "Vantaa"],
    "Azerbaijan": ["Baku", "Ganja", "Sumqayit"],
    "Estonia": ["Tallinn", "Tartu", "Narva"],
    "Latvia": ["Riga", "Daugavpils", "Liepaja"],
    "Cyprus": ["Nicosia", "Limassol", "Larnaca"],
    "Switzerland": ["Zurich", "Geneva", "Basel"],
}
_ONSETS = [
    "b",
    "v",
    "g",
    "d",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "z",
    "sh",
    "ch",
    "kr",
    "pr",
    "st",
    "br",
    "gr",
    "vl",
    "sv",
    "tr",
    "dr",
]
_VOWELS = ["a", "o", "e", "i", "u", "ya", "yo"]
_ENDINGS = [
    "ovo",
    "sk",
    "insk",
    "grad",
    "ino",
    "evka",
    "ovsk",
    "yar",
    "nyy",
    "ets",
    "ka",
    "ovo",
    "ikha",
    "an",
    "abad",
    "lar",
    "ala",
    "ovka",
]


def city_catalog() -> pd.DataFrame:
    """3,915 cities (country, city, weight): heavy-tailed inside each country, fixed for all worlds.

    The weights reproduce the course's country totals and Moscow's 21,874 users of 163,205.
    """
    rng = np.random.default_rng(2021)
    users = np.array(list(catalog.COUNTRY_COUNTS.values()), dtype=np.float64)
    per_country = np.maximum(
        3, np.round(users**0.83 / (users**0.83).sum() * catalog.CITY_COUNT)
    ).astype(int)
    per_country[0] += catalog.CITY_COUNT - per_country.sum()
    names = _generated_names(rng, catalog.CITY_COUNT)
    frames, used = [], 0
    for country, n_cities, n_users in zip(catalog.COUNTRIES, per_country, users):
        real = CAPITALS[country][:n_cities]
        city = real + names[used : used + n_cities - len(real)]
        used += n_cities - len(real)
        # Zipf inside the country, the capital lifted to its course share (Moscow: 15.3%)
        weight = 1.0 / np.arange(1, n_cities + 1) ** 1.05
        weight[0] = 0.0
        weight = weight / weight.sum() * (1 - _capital_share(country))
        weight[0] = _capital_share(country)
        frames.append(
            pd.DataFrame(
                {"country": country, "city": city, "weight": weight * n_users / users.sum()}
            )
        )
    return pd.concat(frames, ignore_index=True)


def _capital_share(country: str) -> float:
    if country == "Russia":
        return catalog.MOSCOW_USERS / catalog.COUNTRY_COUNTS["Russia"]
    return 0.30


def _generated_names(rng: np.random.Generator, n: int) -> list[str]:
    names: dict[str, None] = {}
    while len(names) < n:
        k = 4 * n
        stem = (
            rng.choice(_ONSETS, k).astype(object)
            + rng.choice(_VOWELS, k)
            + rng.choice(_ONSETS, k)
            + rng.choice(_VOWELS, k).astype(object)
            + rng.choice(_ENDINGS, k)
        )
        for name in stem:
            names.setdefault(str(name).capitalize(), None)
    return list(names)[:n]


def make_users(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`user_data` with course columns and types; ids spread over the course's id range."""
    lo, hi = catalog.USER_ID_SPAN
    span = max(n, round(n * (hi - lo + 1) / catalog.COURSE_USERS))
    user_id = np.sort(rng.choice(span, n, replace=False)) + lo
    cities = city_catalog()
    city_row = rng.choice(len(cities), n, p=cities["weight"].to_numpy() / cities["weight"].sum())
    age = catalog.AGE_MIN + np.floor(rng.gamma(catalog.AGE_GAMMA_SHAPE, catalog.AGE_GAMMA_SCALE, n))
    return pd.DataFrame(
        {
            "user_id": user_id.astype(np.int64),
            "gender": (rng.random(n) < catalog.GENDER1_SHARE).astype(np.int64),
            "age": np.clip(age, catalog.AGE_MIN, catalog.AGE_MAX).astype(np.int64),
            "country": cities["country"].to_numpy()[city_row],
            "city": cities["city"].to_numpy()[city_row],
            "exp_group": rng.integers(0, catalog.EXP_GROUPS, n).astype(np.int64),
            "os": np.where(rng.random(n) < catalog.ANDROID_SHARE, "Android", "iOS"),
            "source": np.where(rng.random(n) < catalog.ADS_SHARE, "ads", "organic"),
        }
    )
