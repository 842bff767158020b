"""What the installed package ships besides its modules."""

from __future__ import annotations

import importlib
import tomllib
import types
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


def test_the_kinetics600_zeroshot_class_splits_ship_and_are_declared():
    # `benchmark --protocols k600-zs` reads them by default: an install without them cannot run it.
    folder = files("clipaction.data").joinpath("kinetics600_zeroshot")
    for split in (1, 2, 3):
        assert folder.joinpath(f"split{split}.csv").is_file()
    declared = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["clipaction"]
    assert "data/kinetics600_zeroshot/*.csv" in declared


def test_public_names_stay_functions_after_every_subpackage_is_imported():
    # A subpackage named like a public function (say `clipaction/zeroshot/`) would replace the
    # function on the package as soon as anything imported it: the zero-shot code lives in
    # `clipaction.classify` for that reason.
    import pkgutil

    import clipaction

    for module in pkgutil.walk_packages(clipaction.__path__, "clipaction."):
        if not module.name.endswith("__main__") and module.name.split(".")[1] not in {"serve", "speed"}:
            importlib.import_module(module.name)
    for name in ("load_model", "predict", "zeroshot", "run_study", "index", "search"):
        assert callable(getattr(clipaction, name)) and not isinstance(getattr(clipaction, name), types.ModuleType), name
