"""Errors a user can act on: the CLI prints them without a traceback."""

from __future__ import annotations

from pathlib import Path


class FeedrankError(Exception):
    """An error caused by input or state the user controls (a file, an argument, a config)."""


class InputFileError(FeedrankError):
    """A problem at a known place in an input file: names the file, the row and the column."""

    def __init__(
        self, path: Path | str, problem: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        self.path, self.problem, self.row, self.column = Path(path), problem, row, column
        where = str(self.path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}")
