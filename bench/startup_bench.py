"""The API's cost per asset: `python api.py` on a model folder of N assets (default 50), from the
process's start to its first 200 on /health, and its RSS then. Usage:

    python bench/startup_bench.py                  # 50 copies of the pairs in models/ (else the golden ones)
    python bench/startup_bench.py --source DIR --assets 50 --runs 3

The folder holds copies of the source folder's BTC and ETH pairs, taken in turn, each under a key
of its own (s00, s01, ...) with its metadata rewritten to match: the same work per asset as real
models, as train.py writes them (a pair of an older train.py costs what it cost then).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import start_server, stop_process  # noqa: E402  # bench/common.py

from artifact import model_file_name, model_path, read_metadata  # noqa: E402

TARGET_SECONDS, TARGET_MB = 10.0, 400.0  # with 50 assets


def many_assets(source: Path, count: int, folder: Path) -> None:
    """`count` pairs in `folder`, copies of the source's pairs in turn, each under its own key."""
    pairs = sorted(source.glob("*.json"))
    for index in range(count):
        metadata_file = pairs[index % len(pairs)]
        metadata = read_metadata(metadata_file)
        key = f"s{index:02d}"
        metadata = {**metadata, "asset": key, "name": f"Asset {index}", "symbol": f"S{index:02d}/USD"}
        if "model_file" in metadata:
            metadata["model_file"] = model_file_name(key, metadata["model_sha256"])
            model = folder / metadata["model_file"]
        else:  # format 3 and older: <asset>.pkl
            model = folder / f"{key}.pkl"
        shutil.copyfile(model_path(metadata_file, read_metadata(metadata_file)), model)
        (folder / f"{key}.json").write_text(json.dumps(metadata))


def peak_rss_mb(pid: int) -> float:
    """The largest resident memory the process has had, in MB (VmHWM, from /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def startup(model_dir: Path) -> tuple[float, float]:
    """Seconds from `python api.py` to its first 200 on /health, and its peak RSS in MB by then."""
    server = start_server(
        "api", [sys.executable, str(ROOT / "api.py")], "/health", {"MODEL_DIR": str(model_dir)}
    )
    try:
        return server.cold_start, peak_rss_mb(server.process.pid)
    finally:
        stop_process(server.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = (
        ROOT / "models" if list((ROOT / "models").glob("*.json")) else ROOT / "tests" / "golden" / "models"
    )
    parser.add_argument("--source", type=Path, default=default, help=f"pairs to copy (default {default})")
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs, baseline = measure(args.source, args.assets, args.runs), measure(args.source, 1, args.runs)
    seconds, rss = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    one_seconds, one_rss = (
        statistics.median(r[0] for r in baseline),
        statistics.median(r[1] for r in baseline),
    )
    print(
        f"api.py on {args.assets} assets (copies of {args.source}), {args.runs} runs each, against 1 asset:"
    )
    times = ", ".join(f"{r[0]:.2f}" for r in runs)
    print(
        f"  ready (first 200 on /health): median {seconds:.2f} s, runs {times}; 1 asset {one_seconds:.2f} s"
    )
    print(
        f"  peak RSS when ready: median {rss:.0f} MB, runs {', '.join(f'{r[1]:.0f}' for r in runs)}; "
        f"1 asset {one_rss:.0f} MB"
    )
    if args.assets > 1:
        extra = args.assets - 1
        print(
            f"  each asset beyond the first: {(seconds - one_seconds) / extra:.3f} s, "
            f"{(rss - one_rss) / extra:.2f} MB "
            f"({seconds / one_seconds:.1f}x the time, {rss / one_rss:.1f}x the memory of 1 asset)"
        )
    if args.assets == 50:
        print(f"  targets: ready <= {TARGET_SECONDS:g} s, <= {TARGET_MB:g} MB")


def measure(source: Path, assets: int, runs: int) -> list[tuple[float, float]]:
    """`runs` startups of api.py on a folder of `assets` copies of the source's pairs."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        many_assets(source, assets, Path(folder))
        return [startup(Path(folder)) for _ in range(runs)]


if __name__ == "__main__":
    main()
