"""The feed explorer and the live experiment page in a real headless browser (Debian's chromium
driven by Playwright) against a real `feedrank serve`; and the A/B report opened in it."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from feedrank.server.router import bucket
from feedrank.world.layout import WorldLayout

from feed_serving import ServerProcess, built_repository, exposure_records, like

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# what the browser reports for an answer the page asked for and shows as an error
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 4(04|22)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = os.environ.get("FEEDRANK_CHROMIUM") or shutil.which("chromium")
    assert path, (
        "the page tests drive Debian's chromium: scripts/test.sh installs it "
        "(apt-get install chromium), or set FEEDRANK_CHROMIUM to a Chromium binary"
    )
    with sync_playwright() as playwright:
        # as root (CI), Chromium refuses to start inside its own sandbox
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A page and everything it complained about: console errors, uncaught exceptions."""

    def __init__(self, browser: Browser, viewport: dict[str, int]) -> None:
        self.page: Page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"exception: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text} ({message.location['url']})")

    def post_ids(self, column: int) -> list[int]:
        ranked = self.page.locator("article.ranking").nth(column).locator("li.post:not(.excluded)")
        return [int(i) for i in ranked.evaluate_all("items => items.map(i => i.dataset.postId)")]

    def excluded_ids(self, column: int) -> list[int]:
        excluded = self.page.locator("article.ranking").nth(column).locator("li.post.excluded")
        return [int(i) for i in excluded.evaluate_all("items => items.map(i => i.dataset.postId)")]


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Watched]:
    watched = Watched(browser, DESKTOP)
    yield watched
    watched.page.close()


@pytest.fixture(scope="module")
def server(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("pages") / "log"
    with ServerProcess(tiny_world, built_repository(tiny_world), log) as server:
        yield server


def active_user(world: Path) -> tuple[int, str]:
    """The user with the most likes, and a moment (to the minute) after most of them."""
    ((user, at),) = duckdb.sql(
        "SELECT user_id, max(timestamp) FROM read_parquet(?) WHERE action = 'like' "
        "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1",
        params=[WorldLayout(world).feed_glob],
    ).fetchall()
    return int(user), at.replace(second=0, microsecond=0).isoformat(timespec="minutes")


def liked_before(world: Path, user: int, at: str) -> set[int]:
    rows = duckdb.sql(
        "SELECT post_id FROM read_parquet(?) WHERE action = 'like' AND user_id = ? "
        "AND timestamp < CAST(? AS TIMESTAMP)",
        params=[WorldLayout(world).feed_glob, user, at],
    ).fetchall()
    return {int(r[0]) for r in rows}


def explained(server: ServerProcess, user: int, at: str, limit: int) -> dict:
    response = httpx.get(
        f"{server.url}/explain/feed", params={"id": user, "time": at, "limit": limit}
    )
    assert response.status_code == 200, response.text
    return response.json()


def exposures(log: Path) -> int:
    return len(exposure_records(log))


def show(watched: Watched, server: ServerProcess, query: str) -> None:
    watched.page.goto(f"{server.url}/explorer?{query}")
    watched.page.wait_for_selector("article.ranking li.post")


def test_explorer_shows_every_version_side_by_side_and_logs_no_exposure(
    server, desktop, tiny_world
):
    user, at = active_user(tiny_world)
    before = exposures(server.log_dir)
    show(desktop, server, f"user={user}&time={at}&limit=5")
    assert exposures(server.log_dir) == before, "the explorer must not log exposures"

    page = desktop.page
    columns = page.locator("article.ranking")
    assert columns.count() == 2
    titles = columns.locator("h2").all_inner_texts()
    assert any("control" in t for t in titles) and any("test" in t for t in titles)
    first, second = (columns.nth(i).bounding_box() for i in range(2))
    assert first and second and first["y"] == second["y"] and first["x"] < second["x"]
    answer = explained(server, user, at, 5)
    feed = httpx.get(
        f"{server.url}/post/recommendations/", params={"id": user, "time": at, "limit": 5}
    ).json()
    for i, ranking in enumerate(answer["rankings"]):
        assert desktop.post_ids(i) == [p["id"] for p in ranking["posts"] if not p["excluded"]]
        assert len(desktop.post_ids(i)) == 5
        if ranking["own_group"]:  # the user's own column is exactly the feed's answer
            assert desktop.post_ids(i) == [p["id"] for p in feed["recommendations"]]
    # the most active user has liked some of the top posts: shown, marked, really liked
    excluded = desktop.excluded_ids(0) + desktop.excluded_ids(1)
    assert excluded, "expected liked posts among the top of this user's rankings"
    assert set(excluded) <= liked_before(tiny_world, user, at)
    for post in (p for r in answer["rankings"] for p in r["posts"] if p["excluded"]):
        assert post["rank"] is None
    # a generated world: the ground truth beside every post
    assert page.locator("dt", has_text="true P(like)").count() == page.locator("li.post").count()
    assert page.locator("#profile-title").inner_text() == f"User {user}"
    assert desktop.problems == []


def test_explorer_follows_the_time_and_keeps_its_state_in_the_url(server, desktop, tiny_world):
    user, at = active_user(tiny_world)
    earlier = at[:11] + "03:00" if at[11:13] != "03" else at[:11] + "05:00"
    show(desktop, server, f"user={user}&time={earlier}&limit=4")
    assert desktop.post_ids(0) == [
        p["id"]
        for p in explained(server, user, earlier, 4)["rankings"][0]["posts"]
        if not p["excluded"]
    ]
    page = desktop.page
    page.fill("#time", at)  # a change of the time input alone shows the new feeds
    page.wait_for_url(re.compile(f"time={re.escape(at).replace(':', '(:|%3A)')}"))
    page.wait_for_function(
        "text => document.getElementById('status').textContent.includes(text)", arg=at
    )
    later = explained(server, user, at, 4)["rankings"]
    shown = [desktop.post_ids(i) for i in range(2)]
    assert shown == [[p["id"] for p in r["posts"] if not p["excluded"]] for r in later]
    page.reload()
    page.wait_for_selector("article.ranking li.post")
    assert [desktop.post_ids(i) for i in range(2)] == shown
    assert page.input_value("#user") == str(user) and page.input_value("#time") == at
    page.go_back()
    page.wait_for_function(
        "text => document.getElementById('status').textContent.includes(text)", arg=earlier
    )
    assert page.input_value("#time") == earlier
    assert desktop.problems == []


def test_explorer_errors_are_the_apis_own_messages(server, desktop, tiny_world):
    user, at = active_user(tiny_world)
    page = desktop.page
    for given, field in (((99999999, at), "id"), ((user, "soon"), "time")):
        page.goto(f"{server.url}/explorer?user={given[0]}&time={given[1]}")
        page.wait_for_selector("#error:not([hidden])")
        api = httpx.get(
            f"{server.url}/explain/feed", params={"id": given[0], "time": given[1]}
        ).json()
        message = page.locator("#error").inner_text()
        assert message.startswith(api["error"]) and field in message
        assert page.locator("article.ranking").count() == 0
    assert desktop.problems and all(REFUSED.search(p) for p in desktop.problems)


def test_explorer_works_from_the_keyboard(server, desktop, tiny_world):
    user, at = active_user(tiny_world)
    page = desktop.page
    page.goto(f"{server.url}/explorer")
    focus = lambda: page.evaluate("document.activeElement.id || document.activeElement.textContent")  # noqa: E731
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focus() == "user"
    page.keyboard.type(str(user))
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("article.ranking li.post")
    assert f"user={user}" in page.url and desktop.post_ids(0)
    visited = []
    while focus() != "random" and len(visited) < 20:  # the time input has a stop per field
        page.keyboard.press("Tab")
        visited.append(focus())
    assert visited[0] == "time" and "limit" in visited and visited[-1] == "random"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('Feeds')")
    assert re.search(r"user=\d+", page.url)
    assert desktop.problems == []


@pytest.mark.parametrize("path", ["/explorer?user={user}&time={at}&limit=5", "/experiment"])
def test_pages_fit_a_phone(server, browser, tiny_world, path):
    user, at = active_user(tiny_world)
    phone = Watched(browser, PHONE)
    phone.page.goto(server.url + path.format(user=user, at=at))
    phone.page.wait_for_selector("article.ranking li.post, #updated:not(:empty)")
    assert phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    if path.startswith("/explorer"):
        boxes = [phone.page.locator("article.ranking").nth(i).bounding_box() for i in range(2)]
        assert boxes[0] and boxes[1] and boxes[1]["y"] > boxes[0]["y"]  # stacked, not squeezed
    assert phone.problems == []
    phone.page.close()


@pytest.fixture
def experiment(tiny_world, tmp_path) -> Iterator[ServerProcess]:
    """A server of its own: its logs hold only what the test sends."""
    with ServerProcess(tiny_world, built_repository(tiny_world), tmp_path / "log") as server:
        yield server


def groups_table(page: Page) -> dict[str, tuple[int, int]]:
    rows = page.locator("#groups tbody tr")
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    return {c[0]: (int(c[1].replace(",", "")), int(c[2].replace(",", ""))) for c in cells}


def test_experiment_page_counts_grow_while_requests_come(experiment, desktop, tiny_world):
    _, at = active_user(tiny_world)
    page = desktop.page
    page.goto(f"{experiment.url}/experiment")
    page.wait_for_selector("#updated:not(:empty)")
    assert groups_table(page) == {}
    assert page.locator("#router tbody tr").count() == 2

    groups: Counter[str] = Counter()
    with httpx.Client(base_url=experiment.url) as client:
        users = duckdb.sql(
            "SELECT user_id FROM read_parquet(?) ORDER BY user_id LIMIT 60",
            params=[str(WorldLayout(tiny_world).users)],
        ).fetchall()
        likes = []
        for (user,) in users:
            answer = client.get("/post/recommendations/", params={"id": user, "time": at}).json()
            groups[answer["exp_group"]] += 1
            likes.append(like(user, answer["recommendations"][0]["id"], at))
            if len(likes) == 30:  # the page refreshes while traffic goes on
                page.wait_for_function(
                    "() => document.querySelectorAll('#groups tbody tr').length === 2"
                )
        assert client.post("/feed/events", json=likes[::2]).status_code == 200
    page.wait_for_function(
        "n => [...document.querySelectorAll('#groups tbody tr')]"
        ".reduce((s, r) => s + Number(r.cells[1].textContent.replace(',', '')), 0) === n",
        arg=len(users),
    )
    assert groups_table(page) == {name: (n, n) for name, n in groups.items()}
    status = httpx.get(f"{experiment.url}/experiment/status").json()
    hits = {g["name"]: g["metrics"]["hit_rate"]["mean"] for g in status["groups"]}
    liked_users = {g: 0 for g in groups}
    for i, (user,) in enumerate(users):
        if i % 2 == 0:
            liked_users[status_group(status, user)] += 1
    assert hits == pytest.approx({g: liked_users[g] / groups[g] for g in groups})
    assert "Split check ok" in page.locator("#srm").inner_text()
    assert page.locator("#comparisons tbody tr").count() == 3
    assert desktop.problems == []

    # the full report of the same logs, plots rendered
    page.click("text=The full report")
    page.wait_for_url(re.compile(r"/experiment/report/report\.html$"))
    images = page.locator("img")
    assert images.count() >= 2
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert desktop.problems == []


def status_group(status: dict, user: int) -> str:
    salt = status["router"]["salt"]
    return next(
        g["name"]
        for g in status["router"]["groups"]
        if g["buckets"][0] <= bucket(user, salt) <= g["buckets"][1]
    )
