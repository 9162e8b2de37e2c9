"""Builds put a copy of template.yaml (the table's definition, for `grantwatch local start`) inside the
package, so that a CLI installed from a wheel has it; the repository keeps one template.yaml only."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATE = Path(__file__).parent / "template.yaml"


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the checkout's own template.yaml
            self.copy_file(str(TEMPLATE), str(Path(self.build_lib) / "grantwatch" / "template.yaml"))


setup(cmdclass={"build_py": BuildWithTemplate})
