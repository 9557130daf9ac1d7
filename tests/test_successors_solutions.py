"""The exercise solutions of notebook 13 run and their assertions hold."""

import runpy
from pathlib import Path

import pytest

SOLUTIONS = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "solutions").glob("13_*.py"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_runs_and_asserts(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert "1." in capsys.readouterr().out  # it printed its answers


def test_there_are_solutions():
    assert SOLUTIONS
