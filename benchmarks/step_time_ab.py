"""The training step of this tree against another commit's, measured in one run, printed as JSON.

Both trees run ``benchmarks/train_throughput.py`` (the package's own ``Trainer.train_step``) in
alternating subprocesses, so that machine load drifts over both alike; the result is each tree's
median step time, their ratio (this tree / baseline) and the median of the per-round ratios (the
figure to quote on a shared machine). Used for issue #12: the GAN step after
the loop was turned into objective phases must cost what it did before.

    python benchmarks/step_time_ab.py --baseline bbc5fc3               # CPU: gan_b16 at 64 px, batch 4
    python benchmarks/step_time_ab.py --baseline main~3 --size 256 --batch 16 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def step_ms(tree: Path, args) -> float:
    cmd = [sys.executable, str(tree / "benchmarks" / "train_throughput.py"), "--cases", args.case]
    cmd += ["--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup)]
    env = {**os.environ, "PYTHONPATH": str(tree)}  # each tree imports its own gan_colorize
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: benchmark failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout)["cases"][args.case]["step_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git commit of the baseline tree")
    parser.add_argument("--case", default="gan_b16")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base), args.baseline],
            check=True,
        )
        try:
            times = {"this": [], "baseline": []}
            for _ in range(args.rounds):
                times["baseline"].append(step_ms(base, args))
                times["this"].append(step_ms(REPO, args))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
    medians = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "case": args.case, "size": args.size, "batch": args.batch, "steps": args.steps, "rounds": args.rounds,
        "baseline": args.baseline,
        "step_ms": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "median_step_ms": {k: round(v, 2) for k, v in medians.items()},
        "ratio_this_over_baseline": round(medians["this"] / medians["baseline"], 3),
        # each round's two runs are back to back: their ratio cancels drift in the machine's load
        "median_paired_ratio": round(
            statistics.median(t / b for t, b in zip(times["this"], times["baseline"])), 3
        ),
    }  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
