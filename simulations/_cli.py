"""``python -m simulations run SCENARIO.toml --out DIR``: run, write CSV/JSON/PNG, print a table.

``SCENARIO`` is a path, or the name of a bundled scenario (``baseline``, ``high-cheaters``,
``low-stake``, ``sybil``); ``python -m simulations list`` shows the bundled ones.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from ._errors import ScenarioError
from ._params import load_scenario
from ._plots import write_plots
from ._runner import run_scenario, run_sweep, write_outputs


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1  #: unexpected failure
    USAGE = 2  #: bad arguments or an invalid scenario


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenario name -> path (package data)."""
    root = resources.files("simulations") / "scenarios"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def resolve(spec: str) -> Path:
    path = Path(spec)
    if path.exists():
        return path
    bundled = bundled_scenarios()
    name = path.name.removesuffix(".toml")
    if name in bundled and path.parent == Path("."):
        return bundled[name]
    raise ScenarioError(f"no scenario file {spec!r} (bundled: {', '.join(sorted(bundled))})")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulations", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write results")
    run.add_argument("scenario", help="scenario TOML file or bundled scenario name")
    run.add_argument("--out", required=True, type=Path, help="output directory")
    run.add_argument("--seed", type=int, help="override run.seed")
    run.add_argument("--epochs", type=int, help="override run.epochs")
    run.add_argument("--no-sweep", action="store_true", help="skip the scenario's [sweep]")
    run.add_argument("--no-plots", action="store_true", help="write CSV/JSON only")
    sub.add_parser("list", help="list bundled scenarios")
    return p


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> ExitStatus:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return ExitStatus.OK if exc.code == 0 else ExitStatus.USAGE
    if args.command == "list":
        for name, path in sorted(bundled_scenarios().items()):
            out.write(f"{name}\t{path}\n")
        return ExitStatus.OK
    try:
        scenario = load_scenario(resolve(args.scenario))
        overrides: dict[str, int] = {}
        if args.seed is not None:
            overrides["run.seed"] = args.seed
        if args.epochs is not None:
            overrides["run.epochs"] = args.epochs
        scenario = scenario.with_values(overrides).validate()
    except ScenarioError as exc:
        err.write(f"error: {exc}\n")
        return ExitStatus.USAGE
    result = run_scenario(scenario)
    sweep = None if args.no_sweep else run_sweep(scenario)
    summ = write_outputs(result, sweep, args.out)
    if not args.no_plots:
        write_plots(result, sweep, args.out)
    out.write(_table(summ))
    out.write(f"results in {args.out}\n")
    return ExitStatus.OK


def _table(summ: dict) -> str:
    lines = [
        f"{summ['name']}: {summ['epochs']} epochs",
        f"{'strategy':<14}{'hosts':>6}{'profit/host-epoch':>19}{'reward share':>14}"
        f"{'slashed USD':>13}",
    ]
    for name, s in summ["strategies"].items():
        lines.append(
            f"{name:<14}{s['hosts']:>6}{s['profit_per_host_epoch_usd']:>19.3f}"
            f"{s['reward_share']:>14.3f}{s['slashed_usd']:>13.1f}"
        )
    n = summ["network"]
    lines.append(
        f"availability mean {n['availability_mean']:.3f} (chain view "
        f"{n['claimed_availability_mean']:.3f}), unmet demand {n['unmet_demand_mean']:.3f}, "
        f"allocated {n['allocated_total_usd']:.0f} of {n['budget_total_usd']:.0f} USD"
    )
    return "\n".join(lines) + "\n"
