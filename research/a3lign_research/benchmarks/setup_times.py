"""How long the README's set-up commands take on a fresh clone of this machine (not a test).

Clones HEAD into a scratch folder and times, one after another, what a newcomer runs: `make install`,
`make repro`, a second `dvc repro` (which must run no stage), then `make test`, whose two tiers are timed from
pytest's own summary lines (the first tier is exactly `make test-fast`). Stops at the first command that fails,
with its output. JSON (with each tier's ten slowest tests) to reports/benchmarks/setup_times.json and README's
`setup-times` block. Run it on an otherwise idle machine: every other process shares the cores.

Example (about 40 minutes on 2 cores): python -m a3lign_research.benchmarks.setup_times
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.blocks import cpu_name, publish

SUMMARY = re.compile(r"^=*\s*(?P<counts>\d+ (?:passed|failed).*?) in (?P<seconds>[\d.]+)s\b")
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>setup|call|teardown)\s+(?P<test>.+)$")


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """(wall seconds, output) of `cmd`; SystemExit with its last lines when it fails."""
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    print(f"  {seconds / 60:.1f} min", flush=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}) after {seconds:.0f} s:\n"
                         f"{done.stdout[-5000:]}")
    return seconds, done.stdout


def pytest_tiers(output: str) -> list[dict]:
    """Each pytest run in `output` (the tiers, in order): its counts, its seconds, its slowest tests."""
    tiers, slowest = [], []
    for line in output.splitlines():
        if m := DURATION.match(line):
            slowest.append({"seconds": float(m["seconds"]), "phase": m["phase"], "test": m["test"]})
        elif m := SUMMARY.match(line.strip()):
            tiers.append({"counts": m["counts"].strip(" ="), "seconds": float(m["seconds"]), "slowest": slowest})
            slowest = []
    return tiers


def measure(clone: Path) -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    install_s, _ = timed(["make", "install"], clone)
    repro_s, _ = timed(["make", "repro"], clone)
    again_s, again = timed([".venv/bin/dvc", "repro"], clone)
    ran_again = re.findall(r"Running stage '([^']+)'", again)
    test_s, test_out = timed(["make", "test"], clone)
    fast, e2e = pytest_tiers(test_out)
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "date": datetime.date.today().isoformat(),
            "commit": commit, "install_s": round(install_s, 1), "repro_s": round(repro_s, 1),
            "second_repro_s": round(again_s, 1), "second_repro_ran": ran_again, "test_s": round(test_s, 1),
            "fast": fast, "e2e": e2e}


def _outcomes(*tiers: dict) -> str:
    """The tests run, summed over tiers: `302 passed, 8 skipped` (deselections and warnings left out)."""
    totals: dict[str, int] = {}
    for tier in tiers:
        for n, outcome in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", tier["counts"]):
            totals[outcome] = totals.get(outcome, 0) + int(n)
    return ", ".join(f"{n} {outcome}" for outcome, n in totals.items())


def markdown(r: dict) -> str:
    minutes = lambda s: f"{s / 60:.1f}"  # noqa: E731
    second = "ran no stage" if not r["second_repro_ran"] else f"**ran {', '.join(r['second_repro_ran'])}**"
    return "\n".join([
        f"Measured on a fresh clone of {r['commit'][:10]} on {r['date']}, {r['cpu']} ({r['cores']} cores), one "
        "command after another on an otherwise idle machine (`python -m a3lign_research.benchmarks.setup_times`):", "",
        markdown_table(["command", "minutes"], [
            ["`make install` (part of the first `make repro` or `make test`; pip's cache as the machine had it)",
             minutes(r["install_s"])],
            ["`make repro` after the install", minutes(r["repro_s"])],
            [f"a second `dvc repro` ({second})", minutes(r["second_repro_s"])],
            [f"`make test-fast`: the fast tier, pytest ({_outcomes(r['fast'])})", minutes(r["fast"]["seconds"])],
            [f"`make test`: the fast tier, then the end-to-end tier, pytest ({_outcomes(r['fast'], r['e2e'])})",
             minutes(r["fast"]["seconds"] + r["e2e"]["seconds"])]])])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, help="where to clone (default: a scratch folder, removed after)")
    args = parser.parse_args(argv)
    if args.clone:
        result = measure(args.clone)
    else:
        with tempfile.TemporaryDirectory(prefix="setup-times-") as tmp:
            result = measure(Path(tmp) / "clone")
    publish("setup-times", result)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
