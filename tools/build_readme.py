"""Assemble README.md: the quick start and foundation sections, then one section per
capability from docs/*.md, then tests/benchmarks/layout.

    .venv/bin/python tools/build_readme.py          # rewrite README.md
    .venv/bin/python tools/build_readme.py --check  # exit 1 if README.md is stale

Edit docs/*.md (and the two marked parts of README.md), not the assembled copy.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["families", "weights", "deploy", "data", "training", "study"]
FIRST = "## Other baselines"  # where the docs/ sections start in README.md
LAST = "## Tests, benchmarks, layout"  # where they end


def assemble(readme: str) -> str:
    head = readme[: readme.index(FIRST)]
    tail = readme[readme.index(LAST) :]
    docs = [(ROOT / "docs" / f"{name}.md").read_text().strip() + "\n\n" for name in SECTIONS]
    return head + "".join(docs) + tail


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    path = ROOT / "README.md"
    old = path.read_text()
    new = assemble(old)
    if args.check:
        if new != old:
            print("README.md is stale: run tools/build_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
