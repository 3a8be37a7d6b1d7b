"""The build and evaluate commands explain bad input instead of failing with a traceback."""

from __future__ import annotations

from feedrank.cli import main


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_build_without_a_world_names_the_folder(tmp_path, capsys):
    assert (
        main(["build", "--world", str(tmp_path / "nowhere"), "--repository", str(tmp_path / "r")])
        == 2
    )
    assert "nowhere: not a world" in flat(capsys.readouterr().err)


def test_build_rejects_nonsense_parameters(tmp_path, capsys):
    (tmp_path / "world.json").write_text("{}")
    assert (
        main(
            [
                "build",
                "--world",
                str(tmp_path),
                "--repository",
                str(tmp_path / "r"),
                "--depth",
                "40",
            ]
        )
        == 2
    )
    assert "--depth" in flat(capsys.readouterr().err)


def test_build_rejects_a_learning_rate_that_is_no_rate(tmp_path, capsys, monkeypatch):
    (tmp_path / "world.json").write_text("{}")
    monkeypatch.setenv("FEEDRANK_BUILD__LEARNING_RATE", "0")
    assert main(["build", "--world", str(tmp_path), "--repository", str(tmp_path / "r")]) == 2
    assert "build.learning_rate" in flat(capsys.readouterr().err)


def test_evaluate_needs_published_models(tmp_path, capsys):
    (tmp_path / "world.json").write_text("{}")
    assert main(["evaluate", "--world", str(tmp_path), "--repository", str(tmp_path / "r")]) == 2
    assert "no published version" in flat(capsys.readouterr().err)


def test_evaluate_rejects_a_replay_of_one_user(tmp_path, capsys):
    (tmp_path / "world.json").write_text("{}")
    assert (
        main(
            [
                "evaluate",
                "--world",
                str(tmp_path),
                "--repository",
                str(tmp_path / "r"),
                "--replay-users",
                "1",
            ]
        )
        == 2
    )
    assert "--replay-users 0 or ≥ 2" in flat(capsys.readouterr().err)
