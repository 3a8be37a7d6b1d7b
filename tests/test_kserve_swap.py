"""A new version loaded under a steady stream of tritonclient infers: none fails, each answer
comes whole from one version, and every client sees the switch once."""

from __future__ import annotations

import threading
import time

import numpy as np
import tritonclient.http as triton

from kserve_serving import TOKEN, start
from model_repo_factory import rows, trained, write_version

CLIENTS = 4


def stream(
    url: str, x: np.ndarray, stop: threading.Event, answers: list, failures: list, mine: list
) -> None:
    """Infer in a loop; each answer goes to `mine` (this client's, in order) and `answers`."""
    client = triton.InferenceServerClient(url)
    tensor = triton.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    while not stop.is_set():
        sent = time.monotonic()
        try:
            result = client.infer("m", [tensor])
        except Exception as error:  # any failure at all is what this test counts
            failures.append(repr(error))
            continue
        answer = (
            sent,
            time.monotonic(),
            int(result.get_response()["model_version"]),
            result.as_numpy("probabilities"),
        )
        mine.append(answer)
        answers.append(answer)


def wait_for_answers(answers: list, failures: list, more: int) -> None:
    target = len(answers) + more
    while len(answers) < target and not failures:
        time.sleep(0.01)


def test_swap_under_concurrent_infers_fails_nothing(tmp_path):
    served = start(tmp_path / "repo", {"m": [1]}, policy="latest1")
    x = rows(64, seed=3)
    stop, answers, failures = threading.Event(), [], []
    per_client: list[list] = [[] for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=stream, args=(served.url, x, stop, answers, failures, mine))
        for mine in per_client
    ]
    try:
        for thread in threads:
            thread.start()
        wait_for_answers(answers, failures, 40)
        write_version(served.root, "m", 2)
        client = triton.InferenceServerClient(served.url)
        load_started = time.monotonic()
        client.load_model("m", headers={"Authorization": f"Bearer {TOKEN}"})
        load_finished = time.monotonic()
        wait_for_answers(answers, failures, 40)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        served.server.stop()
    assert failures == []
    assert served.repository.versions("m") == [2]
    expected = {v: trained(v).predict_proba(x)[:, 1] for v in (1, 2)}
    for mine in per_client:
        versions = [version for _, _, version, _ in mine]
        assert versions == sorted(versions), "a client saw version 1 after version 2"
        for _, _, version, probabilities in mine:
            np.testing.assert_allclose(probabilities[:, 1], expected[version], atol=1e-6)
    assert all(version == 1 for _, received, version, _ in answers if received < load_started)
    assert all(version == 2 for sent, _, version, _ in answers if sent > load_finished)
    assert sum(1 for a in answers if a[2] == 1) > 20 and sum(1 for a in answers if a[2] == 2) > 20
