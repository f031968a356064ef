"""Write a benchmark's results: bench/results/NAME.md (a header naming the
machine, then the table) and NAME.json (the raw figures)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


def write_results(output: Path, name: str, title: str, table: str, data: object,
                  setup: str = "s3cmd and moto server on this machine") -> Path:
    header = (f"# {title}\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{platform.node()}, Python {platform.python_version()}, {setup}.\n\n")
    print(table)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.md").write_text(header + table + "\n")
    (output / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"written to {output / (name + '.md')}")
    return output / f"{name}.md"
