"""`python -m bench`: run every scenario module of this folder, print one table, write JSON.

A scenario module is any module here (other than the helpers) with a `run(...)` function
returning a list of dicts; `run` gets whichever of `quick`, `only` and `profile` it accepts.
A module whose `run` does not take `only` runs when a pattern names the module.

Exit status: 0 when every selected scenario ran (whether or not it met its target; these
are benchmarks, not tests), 1 when one of them failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import bench
from bench.common import (
    RESULTS_DIR,
    CpuMeter,
    format_table,
    machine_info,
    matches,
    write_json,
)

# How long to watch the machine before starting, to warn when it is busy with other work.
IDLE_CHECK_S = 1.0
BUSY_WARNING_PCT = 25.0

HELPER_MODULES = frozenset({"__main__", "common", "http_load"})
RUN_OPTIONS = ("quick", "only", "profile")


def discover() -> list[str]:
    """Names of the scenario modules in this folder, in a stable order."""
    names = []
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name in HELPER_MODULES or info.name.startswith("_") or info.ispkg:
            continue
        names.append(info.name)
    return sorted(names)


def _accepted(run: Any) -> set[str]:
    try:
        parameters = inspect.signature(run).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return set(RUN_OPTIONS)
    return {p.name for p in parameters if p.name in RUN_OPTIONS}


def _selected(module_name: str, only: Sequence[str] | None, takes_only: bool) -> bool:
    if not only or takes_only:
        return True
    return matches(module_name, only) or any(p.startswith(f"{module_name}.") for p in only)


def _rows(module_name: str, returned: Any) -> list[dict[str, Any]]:
    """Whatever a module returned, as a list of dicts naming the module."""
    if returned is None:
        return []
    items = returned if isinstance(returned, list | tuple) else [returned]
    rows: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            row = dict(item)
        elif hasattr(item, "as_dict"):
            row = dict(item.as_dict())
        elif is_dataclass(item) and not isinstance(item, type):
            row = asdict(item)
        else:
            row = {"value": item}
        row.setdefault("name", module_name)
        row.setdefault("module", module_name)
        rows.append(row)
    return rows


def run_module(
    module_name: str, quick: bool, only: Sequence[str] | None, profile: bool
) -> tuple[list[dict[str, Any]], bool]:
    """The module's rows, and whether it ran without an exception."""
    try:
        module: ModuleType = importlib.import_module(f"bench.{module_name}")
    except Exception as exc:
        traceback.print_exc()
        return [_failure(module_name, f"cannot import: {type(exc).__name__}: {exc}")], False
    run = getattr(module, "run", None)
    if not callable(run):
        print(f"  bench.{module_name} has no run(...); skipped", flush=True)
        return [], True
    accepted = _accepted(run)
    if not _selected(module_name, only, "only" in accepted):
        return [], True
    options = {"quick": quick, "only": list(only) if only else None, "profile": profile}
    kwargs = {key: value for key, value in options.items() if key in accepted}
    print(f"== bench.{module_name} ==", flush=True)
    try:
        rows = _rows(module_name, run(**kwargs))
    except Exception as exc:
        traceback.print_exc()
        return [_failure(module_name, f"failed: {type(exc).__name__}: {exc}")], False
    ok = not any(str(r.get("skipped", "")).startswith("failed") for r in rows)
    return rows, ok


def _failure(module_name: str, reason: str) -> dict[str, Any]:
    return {"name": module_name, "module": module_name, "skipped": reason}


def list_scenarios(modules: Sequence[str]) -> None:
    for module_name in modules:
        try:
            module = importlib.import_module(f"bench.{module_name}")
        except Exception as exc:
            print(f"{module_name}  (cannot import: {exc})")
            continue
        names = getattr(module, "scenario_names", None)
        if callable(names):
            for name in names():
                print(name)
        else:
            print(f"{module_name}  (whole module)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Corridor benchmarks: print figures beside targets (never assert them).",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=(
            "run only scenarios whose name contains NAME (or matches it, with * ? []); "
            "repeatable; comma-separated lists work too. Example: --only ledger.sqlite"
        ),
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile in-process scenarios with pyinstrument (if installed) into bench/results",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        metavar="PATH",
        help="where to write the results (default: bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    if args.only:
        args.only = [part.strip() for item in args.only for part in item.split(",") if part.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    modules = discover()
    if args.list:
        list_scenarios(modules)
        return 0
    info = machine_info()
    info.update(quick=args.quick, only=args.only, profile=args.profile, argv=sys.argv[1:])
    print(
        f"Corridor benchmarks on {info['cpu_count']} x {info['cpu_model']}, "
        f"{info['memory_total_mb']:,.0f} MB, Python {info['python']}"
        + (" (quick)" if args.quick else ""),
        flush=True,
    )
    idle = CpuMeter()
    time.sleep(IDLE_CHECK_S)
    idle.stop()
    if idle.other_s is not None:
        busy_pct = 100 * idle.other_s / idle.wall_s
        info["other_cpu_pct_at_start"] = round(busy_pct)
        if busy_pct > BUSY_WARNING_PCT:
            print(
                f"warning: other processes are using {busy_pct:.0f}% CPU (100 = one core); "
                "figures will be lower and noisier than on an idle machine",
                flush=True,
            )
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    all_ok = True
    for module_name in modules:
        module_rows, ok = run_module(module_name, args.quick, args.only, args.profile)
        rows.extend(module_rows)
        all_ok = all_ok and ok
    info["duration_s"] = round(time.perf_counter() - started, 1)
    print()
    if rows:
        print(format_table(rows))
    else:
        print("no scenario matched" + (f" {args.only}" if args.only else ""))
    path = write_json(args.json, rows, info)
    print(f"\n{len(rows)} results in {info['duration_s']} s; written to {path}")
    return 0 if all_ok else 1


def main_for(prefix: str) -> None:
    """`python -m bench.<module> [--quick ...]`: that module's scenarios only, unless the
    arguments name scenarios with --only themselves."""
    args = sys.argv[1:]
    has_only = any(arg == "--only" or arg.startswith("--only=") for arg in args)
    sys.exit(main(args if has_only else ["--only", prefix, *args]))


if __name__ == "__main__":
    sys.exit(main())
