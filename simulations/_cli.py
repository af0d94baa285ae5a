"""``python -m simulations run SCENARIO --seeds N --out DIR`` and ``python -m simulations list``.

``SCENARIO`` is a path, or the name of a bundled scenario (``list`` shows them). ``run`` writes
``DIR/summary.json`` (``{"strategies": {NAME: {"roi_mean": x, "roi_ci95": [lo, hi], ...}}}``),
``DIR/epochs.csv`` and the figures, and prints the ROI table. ``--evm`` runs the scenario on the
real contracts (py-evm) instead, through the indexer and the PayoutLedger, and compares it with
the model (small scenarios only: ``evm-small``).
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from ._errors import ScenarioError, SimulationError
from ._params import load_scenario


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1  #: unexpected failure
    USAGE = 2  #: bad arguments or an invalid scenario


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenario name -> path (package data)."""
    root = resources.files("simulations") / "scenarios"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def resolve_path(spec: str) -> Path:
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
    run = sub.add_parser("run", help="run a scenario over seeds and write results")
    run.add_argument("scenario", help="scenario TOML file or bundled scenario name")
    run.add_argument("--out", required=True, type=Path, help="output directory")
    run.add_argument("--seeds", type=int, help="number of seeds (default: run.seeds)")
    run.add_argument("--seed", type=int, help="first seed (default: run.seed)")
    run.add_argument("--epochs", type=int, help="override run.epochs")
    run.add_argument("--hosts", type=int, help="override run.hosts")
    run.add_argument("--workers", type=int, help="processes (default: all cores)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any parameter, e.g. --set protocol.due_bps=10000",
    )
    run.add_argument("--no-plots", action="store_true", help="write JSON/CSV only")
    run.add_argument("--evm", action="store_true", help="run on the real contracts (py-evm)")
    sub.add_parser("list", help="list bundled scenarios")
    return p


def _value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


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
        scenario = load_scenario(resolve_path(args.scenario))
        values: dict[str, Any] = {}
        for key, attr in (("run.seed", "seed"), ("run.epochs", "epochs"), ("run.hosts", "hosts")):
            if getattr(args, attr) is not None:
                values[key] = getattr(args, attr)
        if args.seeds is not None:
            values["run.seeds"] = args.seeds
        for item in args.set:
            key, sep, text = item.partition("=")
            if not sep:
                raise ScenarioError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
            values[key.strip()] = _value(text.strip())
        if values:
            scenario = scenario.with_values(values)
    except ScenarioError as exc:
        err.write(f"error: {exc}\n")
        return ExitStatus.USAGE
    try:
        if args.evm:
            from ._evm import run_evm

            report = run_evm(scenario, args.out, seed=scenario.run.seed)
            out.write(report.text())
            out.write(f"results in {args.out}\n")
            return ExitStatus.OK if report.agrees else ExitStatus.ERROR
        from ._plots import write_plots
        from ._runner import run_seeds, write_outputs

        res = run_seeds(scenario, workers=args.workers)
        summ = write_outputs(res, args.out)
        if not args.no_plots:
            write_plots(res, summ, args.out)
    except ScenarioError as exc:
        err.write(f"error: {exc}\n")
        return ExitStatus.USAGE
    except SimulationError as exc:
        err.write(f"error: {exc}\n")
        return ExitStatus.ERROR
    out.write(table(summ))
    out.write(f"results in {args.out}\n")
    return ExitStatus.OK


def table(summ: dict[str, Any]) -> str:
    """The ROI table as plain text (the same numbers as summary.json)."""
    lines = [
        f"{summ['name']}: {summ['hosts']} hosts x {summ['epochs']} epochs x "
        f"{len(summ['seeds'])} seeds in {summ['seconds']:.1f} s ({summ['workers']} workers)",
        f"{'strategy':<19}{'hosts':>6}{'ROI':>9}{'95% CI':>21}{'gap to honest (paired)':>28}"
        f"{'profit USD/host-day':>30}",
    ]
    for name, s in summ["strategies"].items():
        lo, hi = s["roi_ci95"]
        plo, phi = s["profit_usd_per_host_day_ci95"]
        gap = ""
        if "roi_gap_to_honest" in s:
            glo, ghi = s["roi_gap_to_honest_ci95"]
            gap = f"{s['roi_gap_to_honest']:>8.3f} [{glo:>7.3f}, {ghi:>7.3f}]"
        lines.append(
            f"{name:<19}{s['hosts']:>6}{s['roi_mean']:>9.3f}   [{lo:>7.3f}, {hi:>7.3f}]"
            f"{gap:>28}{s['profit_usd_per_host_day']:>12.3f} [{plo:.3f}, {phi:.3f}]"
        )
    c = summ["checks"]
    if c.get("inert"):
        lines.append(
            f"inert at these parameters (act as honest hosts, left out): {', '.join(c['inert'])}"
        )
    lines.append(
        "every deviant's ROI CI below honest's: "
        + ("yes" if c["every_deviant_below_honest"] else f"NO ({', '.join(c['failing'])})")
    )
    lines.append(
        "... and by the paired (seed-by-seed) gap: "
        + (
            "yes"
            if c["every_deviant_below_honest_paired"]
            else f"NO ({', '.join(c['failing_paired'])})"
        )
    )
    d = summ["detection"]
    lines.append(
        f"detection at half the slot lost: per proof {d['per_proof_at_half_lost']:.9f}, "
        f"per period {d['per_period_at_half_lost']:.9f}"
    )
    for name, s in summ["strategies"].items():
        if "detection_per_period_observed" in s:
            lines.append(
                f"observed: {name} caught in {s['detection_per_period_observed']:.6f} of its "
                f"proof periods with rows missing ({s.get('detection_observed', 0):.6f} per proof)"
            )
    return "\n".join(lines) + "\n"
