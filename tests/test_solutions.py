"""Every exercise solution in notebooks/solutions/ runs and its assertions hold.

A solution file is ``NN_topic.py`` (NN = its notebook); it prints its numbered answers ("1. ...")
and asserts each one, so a wrong answer fails here.
"""

import runpy
from pathlib import Path

import pytest

SOLUTIONS = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_runs_and_asserts(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert "1." in capsys.readouterr().out  # it printed its answers


def test_there_are_solutions():
    assert SOLUTIONS
