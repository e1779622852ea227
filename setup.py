"""Ships the top-level ``search_spaces/`` and ``cuda/`` folders inside the wheel.

Everything else is in pyproject.toml. A wheel can only carry files under its packages, and the
design keeps these folders at the top of the repository (their single source of truth), so the
build step copies them to ``fhn_automl/package_data/<folder>/``, where
``fhn_automl._package_data.package_data_dir`` finds them in an installed copy. A source checkout
(editable install) reads the top-level folders directly.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _package_data_module():
    """``fhn_automl/_package_data.py`` loaded by path (stdlib only), so its table is the one list."""
    spec = importlib.util.spec_from_file_location("_fhn_package_data", ROOT / "fhn_automl" / "_package_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PACKAGE_DATA = _package_data_module()


class BuildPyWithPackageData(build_py):
    """``build_py`` plus the copy of the shipped top-level folders into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        for folder, patterns in PACKAGE_DATA.SHIPPED.items():
            target = Path(self.build_lib) / "fhn_automl" / PACKAGE_DATA.PACKAGED / folder
            self.mkpath(str(target))
            for pattern in patterns:
                for source in sorted((ROOT / folder).glob(pattern)):
                    self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithPackageData})
