"""Everything is in setup.cfg; this adds one file to the installation: the .pth line that lets
``import locust`` resolve to lcore when no real Locust is installed (see
core/locust_fallback.py). It goes into site-packages for a regular and an editable install
alike, and pip removes it with the package."""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "lcore-locust-alias.pth"
# one line, run by site.py at start-up: cheap, and never fatal
PTH_LINE = (
    "import sys; exec('try:\\n import lcore.locust_fallback as f; f.install()\\n"
    "except Exception:\\n pass')\n"
)


class build_py_with_alias(build_py):
    def run(self) -> None:
        super().run()
        # an editable wheel takes its files from the install folder, a regular one from build_lib
        if getattr(self, "editable_mode", False):
            target = self.get_finalized_command("install").install_lib
        else:
            target = self.build_lib
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, PTH_NAME), "w") as f:
            f.write(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": build_py_with_alias})
