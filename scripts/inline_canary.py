"""Writes functions/grantwatch/canary.py into member/forwarder.yaml as the canary's inline code
(Code.ZipFile): a StackSet deploys no package, and the inline code must stay the packaged canary itself.
tests/unit/test_canary_template.py fails while the two differ: run `python scripts/inline_canary.py`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "functions" / "grantwatch" / "canary.py"
TEMPLATE = ROOT / "member" / "forwarder.yaml"
MARKER = "        ZipFile: |"
INDENT = " " * 12


def inlined(template: str, source: str) -> str:
    """The template with the block under MARKER replaced by `source`, indented."""
    lines = template.splitlines()
    start = lines.index(MARKER) + 1
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(INDENT)):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1  # the blank lines before the next resource are the template's own
    block = [INDENT + line if line else "" for line in source.splitlines()]
    return "\n".join([*lines[:start], *block, *lines[end:]]) + "\n"


def main() -> None:
    TEMPLATE.write_text(
        inlined(TEMPLATE.read_text(encoding="utf-8"), SOURCE.read_text(encoding="utf-8")), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
