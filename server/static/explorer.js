// The feed explorer: its state lives in the URL (?user=&time=&limit=), so a view can be
// shared and reloaded; everything shown comes from the /explain/* JSON endpoints.
"use strict";

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(body, status) {
    const fields = (body.fields || []).map((f) => `${f.field}: ${f.problem}`).join("; ");
    super(fields ? `${body.error}: ${fields}` : body.error || `HTTP ${status}`);
  }
}

async function api(path, query) {
  const given = Object.entries(query).filter(([, v]) => v !== null && v !== "");
  const response = await fetch(`${path}?${new URLSearchParams(given)}`);
  const body = await response.json();
  if (!response.ok) throw new ApiError(body, response.status);
  return body;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const shorten = (text, length = 70) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);
const number = (value, digits = 4) => (value === null ? "–" : value.toFixed(digits));

function state() {
  const query = new URLSearchParams(location.search);
  return { user: query.get("user") || "", time: query.get("time") || "", limit: query.get("limit") || "10" };
}

function navigate(next) {
  const query = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== ""));
  history.pushState(null, "", `${location.pathname}?${query}`);
  show();
}

function showError(error) {
  $("error").textContent = error.message;
  $("error").hidden = false;
  $("status").textContent = "";
}

function renderProfile(user) {
  const fields = $("profile-fields");
  const rows = [
    ["user id", user.user_id],
    ["experiment group", `${user.exp_group} (bucket ${user.bucket}: ${user.model} v${user.version})`],
    ...Object.entries(user.profile || {}).map(([k, v]) => [k === "exp_group" ? "course exp_group" : k, v]),
    ["likes before the time", user.likes],
    ["likes by topic", Object.entries(user.likes_by_topic).map(([t, n]) => `${t} ${n}`).join(", ") || "none"],
  ];
  fields.replaceChildren(...rows.flatMap(([k, v]) => [element("dt", {}, k), element("dd", {}, String(v))]));
  $("recent").replaceChildren(...user.recent_likes.map((p) =>
    element("li", {}, `${p.liked_at.replace("T", " ")} · ${p.topic} · ${shorten(p.text)}`)));
  $("recent-title").hidden = !user.recent_likes.length;
  $("profile-title").textContent = `User ${user.user_id}`;
  $("profile").hidden = false;
}

function renderPost(post, truth) {
  const badges = [element("span", { class: "badge" }, post.topic)];
  if (post.excluded) badges.unshift(element("span", { class: "badge excluded" }, "liked before: excluded"));
  const pair = (name, value) => element("div", {}, element("dt", {}, name), element("dd", {}, number(value)));
  const scores = element("dl", { class: "scores" },
    pair("score", post.score), pair("model P(like)", post.probability));
  if (truth) scores.append(pair("true P(like)", post.truth));
  return element("li", { class: post.excluded ? "post excluded" : "post", "data-post-id": post.id },
    element("div", {}, element("strong", {}, post.rank === null ? "– " : `#${post.rank} `), ...badges,
      element("span", { class: "muted" }, `post ${post.id}`)),
    element("p", { class: "text" }, post.text), scores);
}

function renderRankings(feed) {
  const columns = feed.rankings.map((ranking, i) => {
    const title = `${ranking.groups.join(", ") || "not routed"} · ${ranking.model} v${ranking.version}`;
    const head = element("h2", { id: `ranking-${i}` }, title);
    if (ranking.own_group) head.append(" ", element("span", { class: "badge own" }, "this user's group"));
    const body = ranking.error
      ? element("p", { class: "error", role: "alert" }, ranking.error)
      : element("ol", { class: "posts" }, ...ranking.posts.map((p) => renderPost(p, feed.ground_truth)));
    const meta = ranking.error ? "" : `ranked by ${ranking.ranker} over ${ranking.candidates.toLocaleString()} posts`;
    return element("article", { class: "ranking", "aria-labelledby": `ranking-${i}` },
      head, element("p", { class: "muted" }, meta), body);
  });
  $("rankings").replaceChildren(...columns);
}

async function show() {
  const current = state();
  $("user").value = current.user;
  $("time").value = /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(current.time) ? current.time.slice(0, 16) : "";
  $("limit").value = current.limit;
  $("error").hidden = true;
  if (!current.user) {
    $("status").textContent = "Choose a user and a time, or a random active user.";
    return;
  }
  $("status").textContent = "Ranking…";
  const query = { id: current.user, time: current.time };
  try {
    const [user, feed] = await Promise.all([
      api("/explain/user", query),
      api("/explain/feed", { ...query, limit: current.limit }),
    ]);
    renderProfile(user);
    renderRankings(feed);
    $("status").textContent = `Feeds of user ${feed.user_id} at ${feed.time} UTC.`;
  } catch (error) {
    $("profile").hidden = true;
    $("rankings").replaceChildren();
    showError(error);
  }
}

function formState() {
  return { user: $("user").value.trim(), time: $("time").value, limit: $("limit").value };
}

$("query").addEventListener("submit", (event) => {
  event.preventDefault();
  navigate(formState());
});
$("time").addEventListener("change", () => {
  if ($("user").value.trim()) navigate(formState());
});
$("random").addEventListener("click", async () => {
  try {
    const picked = await api("/explain/random-user", { time: $("time").value });
    navigate({ ...formState(), user: String(picked.user_id), time: picked.time.slice(0, 16) });
  } catch (error) {
    showError(error);
  }
});
window.addEventListener("popstate", show);
show();
