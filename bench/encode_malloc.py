"""Encode time and peak memory of the torch backend under different malloc settings, side by side.

Each setting encodes the same scifact documents (evenly spaced over the corpus) in a fresh child
process, settings interleaved round by round (the order rotates) so load on the machine hits all
alike. A child loads the model, warms it up on a few texts, then times one encode; it reports the
encode's seconds and its peak resident memory (``VmHWM``, native memory included). Time figures
are medians over rounds of each setting's time divided by the reference's in the same round.

Settings (``--settings``, comma-separated):

* ``reference``: sentence-transformers' ``model.encode`` in a process that imports nothing else,
  glibc's defaults (what ``mine_hard_negatives`` runs);
* ``ours``: the CLI's path as ``mine`` runs it (``core.cli`` imported, ``core.memory``'s settings
  applied, ``Encoder.encode``);
* ``ours-glibc``: the same without ``core.memory`` (glibc's defaults);
* ``ours-mmap-N``: the same with the mmap threshold fixed at N MiB instead;
* ``...+thp`` / ``...+nothp``: ``THP_MEM_ALLOC_ENABLE`` set to 1 / 0 (torch aligns large tensors
  to 2 MiB and asks for transparent huge pages; ``core.memory`` sets 1 unless it is set).

Besides wall time each child reports its CPU time (user + sys) and minor page faults over the
encode: on a machine shared with other work, CPU time is the steadier measure of the work done.

    .venv/bin/python bench/encode_malloc.py --texts 256 --rounds 3 --json bench/encode-malloc.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (0 where there is none)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def sample_texts(n: int) -> list[str]:
    sys.path.insert(0, str(REPO))
    from core.text import document_text

    docs = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    step = max(1, len(docs) // n)
    return [document_text(d.get("title"), d.get("text")) for d in docs[::step][:n]]


def child(setting: str, n: int, batch_size: int) -> dict:
    """Encode ``n`` texts under ``setting`` in this process; seconds and memory."""
    base, _, flags = setting.partition("+")
    if "thp" in flags.split("+"):
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # read once, at torch's first allocation
    elif "nothp" in flags.split("+"):
        os.environ["THP_MEM_ALLOC_ENABLE"] = "0"  # core.memory leaves a value it finds
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    texts = sample_texts(n)
    if base == "reference":
        from sentence_transformers import SentenceTransformer

        from core.embed import bundled_model_path

        model = SentenceTransformer(bundled_model_path(), device="cpu")

        def encode(batch: list[str]):
            return model.encode(batch, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
    else:
        import core.cli  # noqa: F401  (what the mine process has imported)
        from core import memory

        if base == "ours":
            memory.return_large_blocks()
        elif base.startswith("ours-mmap-"):
            memory.return_large_blocks(int(base.removeprefix("ours-mmap-")) << 20)
        elif base != "ours-glibc":
            raise SystemExit(f"unknown setting {setting!r}")
        from core.embed import load_encoder

        encoder = load_encoder(None, batch_size)
        encode = encoder.encode
    encode(texts[:4])
    before = vm_kib("VmRSS")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    encode(texts)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"setting": setting, "seconds": round(seconds, 3),
            "cpu_user_s": round(after.ru_utime - cpu.ru_utime, 3),
            "cpu_sys_s": round(after.ru_stime - cpu.ru_stime, 3),
            "minor_faults": after.ru_minflt - cpu.ru_minflt, "rss_before_mib": before // 1024,
            "peak_mib": vm_kib("VmHWM") // 1024, "rss_after_mib": vm_kib("VmRSS") // 1024}


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="reference,ours,ours+nothp,ours-glibc")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also append the result here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(REPO))
        print(json.dumps(child(args.child, args.texts, args.batch_size)))
        return 0
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if "reference" not in settings:
        settings.insert(0, "reference")
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    loads = [load_average()]
    for r in range(args.rounds):
        for setting in settings[r % len(settings):] + settings[:r % len(settings)]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", setting, "--texts", str(args.texts),
                 "--batch-size", str(args.batch_size)],
                cwd=REPO, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            runs[setting].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        loads.append(load_average())
    result = {"bench": "encode_malloc", "texts": args.texts, "batch_size": args.batch_size,
              "rounds": args.rounds, "load_1min": loads, "settings": {}}
    for setting, rows in runs.items():
        refs = runs["reference"]
        ratios = [row["seconds"] / ref["seconds"] for row, ref in zip(rows, refs)]
        cpu = [(row["cpu_user_s"] + row["cpu_sys_s"]) / (ref["cpu_user_s"] + ref["cpu_sys_s"])
               for row, ref in zip(rows, refs)]
        result["settings"][setting] = {
            "time_ratio_median": round(statistics.median(ratios), 3),
            "time_ratios": [round(x, 3) for x in ratios],
            "cpu_ratio_median": round(statistics.median(cpu), 3),
            "cpu_ratios": [round(x, 3) for x in cpu],
            "cpu_s": [round(row["cpu_user_s"] + row["cpu_sys_s"], 2) for row in rows],
            "minor_faults": [row["minor_faults"] for row in rows],
            "seconds": [row["seconds"] for row in rows],
            "peak_mib": [row["peak_mib"] for row in rows],
            "rss_after_mib": [row["rss_after_mib"] for row in rows],
        }
    from results import report  # bench/, the script's own folder

    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
