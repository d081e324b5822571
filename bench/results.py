"""What every benchmark script does with its result: print it and append it as a JSON line."""

from __future__ import annotations

import json
from pathlib import Path


def report(result: dict, json_path: Path | None) -> None:
    """Print ``result`` indented; append it as one line to ``json_path`` when given."""
    print(json.dumps(result, indent=2), flush=True)
    if json_path:
        with open(json_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
