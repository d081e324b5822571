"""core.memory: torch's large tensors get huge pages, and freed heap blocks go back to the system.

Real glibc, real processes: each scenario runs in a fresh interpreter and reads its own VmRSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.memory import return_large_blocks

HUGE_PAGES = r"""
import json, os, resource, sys
sys.path.insert(0, {repo!r})
os.environ.pop("THP_MEM_ALLOC_ENABLE", None)
from core.memory import return_large_blocks
return_large_blocks()
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
big = torch.ones(64 << 20, dtype=torch.uint8)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
huge = sum(int(line.split()[1]) for line in open("/proc/self/smaps")
           if line.startswith("AnonHugePages:"))
print(json.dumps({{"env": os.environ.get("THP_MEM_ALLOC_ENABLE"), "faults": faults,
                  "huge_kib": huge}}))
"""


def _huge_pages_allowed() -> bool:
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return mode.exists() and "[never]" not in mode.read_text()


NEEDS_GLIBC = pytest.mark.skipif(not sys.platform.startswith("linux") or not return_large_blocks(),
                                 reason="glibc's mallopt and malloc_trim are needed")


def _run(scenario: str) -> dict:
    """Run a scenario in a fresh interpreter; its last output line is a JSON object."""
    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", scenario.format(repo=repo)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@NEEDS_GLIBC
def test_large_tensors_get_huge_pages():
    """A 64 MiB tensor is faulted in 2 MiB pages, not 16,384 pages of 4 KiB."""
    result = _run(HUGE_PAGES)
    assert result["env"] == "1"
    if _huge_pages_allowed():
        assert result["huge_kib"] >= 32 << 10 and result["faults"] < 4096


TRIM = r"""
import json, sys
import numpy as np
sys.path.insert(0, {repo!r})
from core.memory import return_large_blocks, trim_heap
return_large_blocks()

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

blocks, pins = [], []
for _ in range(200):  # 1 MiB blocks: below the threshold, so served from the heap
    blocks.append(np.ones(1 << 20, dtype=np.uint8))
    pins.append(np.ones(1 << 12, dtype=np.uint8))  # keeps the heap from shrinking at its top
del blocks
before = rss()
trimmed = trim_heap()
print(json.dumps({{"trimmed": trimmed, "returned": before - rss()}}))
"""


@NEEDS_GLIBC
def test_trim_heap_returns_freed_heap_blocks():
    """Freed blocks below the threshold stay resident until the heap is trimmed."""
    result = _run(TRIM)
    assert result["trimmed"] is True
    assert result["returned"] > 150 << 20  # most of the 200 MiB
