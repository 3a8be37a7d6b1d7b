"""Link the installed package's layout into one folder, for tools that walk a package on disk.

feedrank's stages live in top-level folders that setuptools installs as `feedrank.<stage>`
(`package-dir` in pyproject.toml). mypy and import-linter find modules by walking folders, not
through the editable install's import hook, so they are pointed at a tree of symbolic links
laid out as the package is installed: `<out>/feedrank/<stage>` -> `<stage>/`.

Usage: python scripts/package_tree.py OUT
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(out: Path) -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    shutil.rmtree(out, ignore_errors=True)
    package = out / "feedrank"
    package.mkdir(parents=True)
    for source in (ROOT / mapping["feedrank"]).glob("*.py"):
        (package / source.name).symlink_to(source)
    for name, folder in mapping.items():
        if name != "feedrank":
            (out / name.replace(".", "/")).symlink_to(ROOT / folder, target_is_directory=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
