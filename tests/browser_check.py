"""Open a report.html in headless Chromium and check it the way a reader would see it.

    python tests/browser_check.py DIR/report.html --rows N [--points M]

Checks that the page loads and runs its inline self-check, that every <img> decodes
(naturalWidth > 0), that the results tables hold at least N approach rows, that every n/a cell's
footnote number is explained once under its table (and no footnote is left unused), and that the
perception-distortion plots hold at least M points, each drawn inside its plot. The page's own
script (gan_colorize/report/html.py) writes the facts into <pre id="selfcheck"> on load;
``--dump-dom`` prints the DOM after scripts ran, and this script reads them back.
Exit status 0 when every check passes, 1 with one line per failure otherwise, 2 when Chromium
cannot be run.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# headless, offline, no profile state: nothing but the file itself is loaded
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",  # let the load event and the self-check script run before the dump
)
SELFCHECK = re.compile(r'<pre id="selfcheck"[^>]*>(.*?)</pre>', re.S)


def find_chromium(path: str | None = None) -> str | None:
    for candidate in (path, CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def dump_dom(page: Path, chromium: str, timeout: float = 120.0) -> str:
    with tempfile.TemporaryDirectory(prefix="browser_check_") as profile:
        command = [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def read_selfcheck(dom: str) -> dict:
    match = SELFCHECK.search(dom)
    if match is None:
        raise ValueError('the page has no <pre id="selfcheck">: is it a gan-colorize report.html?')
    return json.loads(html.unescape(match.group(1)))


def footnote_failures(tables: list[dict]) -> list[str]:
    """Each table's n/a cells against the footnotes listed under it."""
    problems = []
    for table in tables:
        used, notes = set(table["used"]), table["notes"]
        where = f"table {table['dataset']!r}"
        if len(notes) != len(set(notes)):
            problems.append(f"{where}: a footnote is listed twice: {notes}")
        if used - set(notes):
            problems.append(f"{where}: n/a cells refer to footnotes not listed: {sorted(used - set(notes))}")
        if set(notes) - used:
            problems.append(f"{where}: footnotes no cell refers to: {sorted(set(notes) - used)}")
    return problems


def failures(check: dict, min_rows: int, min_points: int = 0) -> list[str]:
    problems = []
    if not check.get("loaded"):
        return ["the page's self-check script did not run (the load event never fired, or scripts failed)"]
    if check["decoded"] != check["images"]:
        problems.append(
            f"{check['images'] - check['decoded']} of {check['images']} images did not decode: "
            + ", ".join(check.get("failed", []))
        )
    if check["approach_rows"] < min_rows:
        problems.append(
            f"the results tables have {check['approach_rows']} approach rows, expected at least {min_rows}"
        )
    if check["tradeoff_points"] < min_points:
        problems.append(
            f"the perception-distortion plots have {check['tradeoff_points']} points, expected at least "
            f"{min_points}"
        )
    if check["tradeoff_outside"]:
        problems.append(
            f"{check['tradeoff_outside']} plot points are drawn outside their plot (or not at all)"
        )
    return problems + footnote_failures(check["footnotes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="report.html")
    parser.add_argument(
        "--rows", type=int, default=1, help="approach rows the results tables must hold, at least"
    )
    parser.add_argument(
        "--points", type=int, default=0, help="points the perception-distortion plots must hold, at least"
    )
    parser.add_argument("--chromium", help=f"Chromium binary (default {CHROMIUM}, else chromium on PATH)")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"browser check: {args.page} does not exist", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("browser check: Chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        check = read_selfcheck(dump_dom(args.page, chromium))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"browser check: could not run Chromium on {args.page}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"browser check: {args.page}: {exc}", file=sys.stderr)
        return 1
    problems = failures(check, args.rows, args.points)
    for problem in problems:
        print(f"browser check FAILED: {args.page}: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"browser check passed: {args.page}: {check['decoded']}/{check['images']} images decoded, "
            f"{check['approach_rows']} approach rows, {check['reference_rows']} reference rows, "
            f"{check['svgs']} SVGs, {check['tradeoff_points']} plot points in {check['tradeoff_plots']} "
            f"perception-distortion plots, {sum(len(t['notes']) for t in check['footnotes'])} n/a footnotes"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
