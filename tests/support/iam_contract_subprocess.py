"""The IAM contract in the CLI subprocesses the tests start (`python -m grantwatch …`, the `grantwatch`
command): the corridors they drive are the functions' code, and their calls are checked like any other.

The plugin writes a `sitecustomize` into a folder of its own and puts it first on PYTHONPATH, so that every
Python process the tests start from this environment runs it at start-up. It records only a CLI run of the
same interpreter (not a clean venv's, not `python -c`), checks its calls against template.yaml in that
process, and leaves what it found in the folder: each violation as soon as it is found (a run that is killed
keeps them), every call's count at exit. The process that started it counts them as its own. The CLI's own
calls (queries, migrations, table creation) are no function's and stay unchecked
(tests/support/iam_contract.py says why)."""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

FOLDER_VARIABLE = "GRANTWATCH_IAM_CONTRACT_FOLDER"
PREFIX_VARIABLE = "GRANTWATCH_IAM_CONTRACT_PREFIX"

_SITECUSTOMIZE = """\
import os
import sys

_argv = sys.orig_argv
if os.environ.get({prefix!r}) == sys.prefix and (
    _argv[1:3] in (["-m", "grantwatch"], ["-m", "grantwatch.cli"])
    or (len(_argv) > 1 and os.path.basename(_argv[1]) == "grantwatch")
):
    sys.path.insert(0, {root!r})
    from tests.support.iam_contract_subprocess import record_if_cli

    record_if_cli(_argv)
"""


def enable(folder: Path, root: Path, environ: MutableMapping[str, str] = os.environ) -> None:
    """Every CLI subprocess started from now on with `environ` (by default this process's) records into
    `folder`."""
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(
        _SITECUSTOMIZE.format(prefix=PREFIX_VARIABLE, root=str(root)), encoding="utf-8"
    )
    environ[FOLDER_VARIABLE] = str(folder)
    environ[PREFIX_VARIABLE] = sys.prefix
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), environ.get("PYTHONPATH")) if p)


def is_cli(argv: list[str]) -> bool:
    """`python -m grantwatch …` or the `grantwatch` console script."""
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] in {"grantwatch", "grantwatch.cli"}:
        return True
    return len(argv) >= 2 and Path(argv[1]).name == "grantwatch"


def record_if_cli(argv: list[str]) -> None:
    if not is_cli(argv):
        return
    from tests.support.iam_contract import RECORDING, SESSION, Call, Checker

    folder = Path(os.environ[FOLDER_VARIABLE])
    violations = folder / f"violations-{os.getpid()}.txt"

    def sink(call: Call) -> None:
        known = set(SESSION.checker.violations)
        SESSION.sink(call)
        _append(violations, [line for line in SESSION.checker.violations if line not in known])

    def failed(where: str, error: BaseException) -> None:
        checker = Checker()
        checker.error(where, error)
        SESSION.failed(where, error)
        _append(violations, list(checker.violations))

    RECORDING.sink, RECORDING.failed = sink, failed
    RECORDING.install()
    atexit.register(_export, folder / f"calls-{os.getpid()}.json")


def _append(path: Path, lines: list[str]) -> None:
    if lines:
        with path.open("a", encoding="utf-8") as out:
            out.write("".join(json.dumps(line) + "\n" for line in lines))


def _export(path: Path) -> None:
    from tests.support.iam_contract import SESSION

    path.write_text(json.dumps(SESSION.export()), encoding="utf-8")


def collected(folder: str | Path | None = None) -> Iterator[dict[str, Any]]:
    """What the CLI subprocesses recorded in `folder` (by default this process's), each as a Session
    export."""
    folder = folder or os.environ.get(FOLDER_VARIABLE)
    if not folder:
        return
    for path in sorted(Path(folder).glob("calls-*.json")):
        yield json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(Path(folder).glob("violations-*.txt")):
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        yield {"violations": lines, "calls": []}
