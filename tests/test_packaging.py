"""What the installed package ships besides its modules."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_package_ships_the_py_typed_marker():
    # PEP 561: without the marker, type checkers ignore the package's annotations.
    assert files("clipaction").joinpath("py.typed").is_file()


def test_py_typed_is_declared_as_package_data():
    # An installed wheel holds only the non-Python files pyproject declares.
    config = tomllib.loads(PYPROJECT.read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["clipaction"]
