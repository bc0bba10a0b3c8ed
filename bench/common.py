"""Shared helpers of the benchmarks: timing, percentiles, memory, tables, JSON output.

Benchmarks print figures; they never assert timings. Every scenario returns plain dicts
(see `Result.as_dict`) so that `python -m bench` can print one table and write one JSON
file with the machine it ran on.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = (
    "corridor",
    "sqlalchemy",
    "psycopg",
    "psycopg-binary",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "h11",
    "httpx",
    "alembic",
    "web3",
    "py-evm",
)


# ------------------------------------------------------------------------------ timing


def now_s() -> float:
    return time.perf_counter()


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed:` ... then `elapsed[0]` holds the seconds taken."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------------------ memory


def _status_kb(pid: int | str, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset a process's peak RSS (VmHWM) so the next reading covers one scenario only.

    Linux >= 4.0 resets it when "5" is written to /proc/PID/clear_refs; elsewhere the
    reading keeps covering the whole run, which `peak_rss_mb` then over-reports.
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size of one process in MiB, from /proc (no psutil)."""
    kb = _status_kb(pid, "VmHWM")
    if kb is None and pid == "self":
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return None if kb is None else kb / 1024


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (e.g. uvicorn's supervisor and its workers)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as children:
                    found.extend(int(child) for child in children.read().split())
            except (OSError, ValueError):
                continue
    return found


def tree_peak_rss_mb(pid: int) -> float | None:
    """Sum of the peak RSS of a process and its descendants, in MiB."""
    readings = [peak_rss_mb(p) for p in process_tree(pid)]
    known = [r for r in readings if r is not None]
    return sum(known) if known else None


# ----------------------------------------------------------------------------- results


@dataclass
class Result:
    """One scenario's figures. Latencies are in milliseconds, per `latency_of`."""

    name: str
    backend: str
    workload: str
    transfers: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list, repr=False)
    latency_of: str = "transfer"
    peak_rss_mb: float | None = None
    target: str = ""
    # (minimum transfers/s, maximum p99 in ms); None: no such bound.
    target_tps_min: float | None = None
    target_p99_ms_max: float | None = None
    errors: int = 0
    # CPU the benchmark's own processes (and the API server's) used per transfer, and the
    # CPU other processes of the machine used meanwhile (100 = one core).
    cpu_ms_per_transfer: float | None = None
    other_cpu_pct: float | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput_tps(self) -> float:
        return self.transfers / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def target_met(self) -> bool | None:
        if self.target_tps_min is None and self.target_p99_ms_max is None:
            return None
        met = True
        if self.target_tps_min is not None:
            met = met and self.throughput_tps >= self.target_tps_min
        if self.target_p99_ms_max is not None:
            met = met and percentile(self.latencies_s, 99) * 1000 <= self.target_p99_ms_max
        return met and self.errors == 0

    def as_dict(self) -> dict[str, Any]:
        lat_ms = [s * 1000 for s in self.latencies_s]
        data = asdict(self)
        del data["latencies_s"]
        data.update(
            throughput_tps=round(self.throughput_tps, 1),
            samples=len(lat_ms),
            p50_ms=_round(percentile(lat_ms, 50)),
            p99_ms=_round(percentile(lat_ms, 99)),
            mean_ms=_round(sum(lat_ms) / len(lat_ms)) if lat_ms else None,
            max_ms=_round(max(lat_ms)) if lat_ms else None,
            elapsed_s=round(self.elapsed_s, 3),
            peak_rss_mb=None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
            cpu_ms_per_transfer=_round_opt(self.cpu_ms_per_transfer),
            other_cpu_pct=None if self.other_cpu_pct is None else round(self.other_cpu_pct),
            target_met=self.target_met(),
        )
        return data


def skipped(name: str, backend: str, reason: str) -> dict[str, Any]:
    """A row for a scenario that did not run, with the reason printed in the table."""
    return {"name": name, "backend": backend, "skipped": reason}


def _round(value: float) -> float | None:
    return None if value != value else round(value, 3)  # NaN -> None


def _round_opt(value: float | None) -> float | None:
    return None if value is None else _round(value)


def matches(name: str, patterns: Sequence[str] | None) -> bool:
    """`--only` patterns: shell wildcards if any, else a substring of the scenario name."""
    if not patterns:
        return True
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatchcase(name, pattern):
                return True
        elif pattern in name:
            return True
    return False


# ------------------------------------------------------------------------------ tables


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (heading, key in the result dict, alignment)
    ("scenario", "name", "<"),
    ("transfers", "transfers", ">"),
    ("transfers/s", "throughput_tps", ">"),
    ("p50 ms", "p50_ms", ">"),
    ("p99 ms", "p99_ms", ">"),
    ("latency of", "latency_of", "<"),
    ("CPU ms/transfer", "cpu_ms_per_transfer", ">"),
    ("other CPU %", "other_cpu_pct", ">"),
    ("peak RSS MB", "peak_rss_mb", ">"),
    ("target", "target", "<"),
    ("met", "target_met", "<"),
)
TABLE_FOOTNOTE = (
    "CPU ms/transfer: CPU of the benchmark process and of the API server per transfer "
    "(PostgreSQL's own not included). other CPU %: what every other process of the machine "
    "used meanwhile, PostgreSQL included (100 = one core): high values mean a busy machine "
    "or, on PostgreSQL, the database's share of the work."
)


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """One aligned text table; skipped scenarios show their reason across the row."""
    body: list[list[str]] = []
    skips: list[str] = []
    others: list[str] = []
    for row in rows:
        if row.get("skipped"):
            skips.append(f"  skipped {row.get('name', '?')}: {row['skipped']}")
            continue
        if "throughput_tps" not in row:
            # Figures of another kind (gas, sizes): the row's own description carries them.
            others.append(f"  {row.get('name', '?')}: {row.get('workload') or row}")
            continue
        cells = []
        for _, key, _ in COLUMNS:
            value = row.get(key)
            if key in ("p50_ms", "p99_ms", "cpu_ms_per_transfer"):
                cells.append(_fmt(value, 2))
            elif key == "other_cpu_pct" and isinstance(value, int | float):
                cells.append(f"{value:.0f}")
            else:
                cells.append(_fmt(value))
        if row.get("errors"):
            cells[-1] += f" ({row['errors']} errors)"
        body.append(cells)
    headings = [heading for heading, _, _ in COLUMNS]
    widths = [len(h) for h in headings]
    for cells in body:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{cell:{align}{width}}"
            for cell, width, (_, _, align) in zip(cells, widths, COLUMNS, strict=True)
        ).rstrip()

    out = [line(headings), line(["-" * w for w in widths])] if body else []
    out.extend(line(cells) for cells in body)
    out.extend(others)
    out.extend(skips)
    if body:
        out.append(textwrap.fill(TABLE_FOOTNOTE, width=100))
    return "\n".join(out)


def print_result(row: dict[str, Any]) -> None:
    """A scenario's figures as soon as it finishes (the full table comes at the end)."""
    if row.get("skipped"):
        print(f"  skipped {row.get('name')}: {row['skipped']}", flush=True)
        return
    rss = row.get("peak_rss_mb")
    print(
        f"  {row['name']}: {row.get('workload', '')}\n"
        f"    {_fmt(row.get('transfers'))} transfers in {_fmt(row.get('elapsed_s'), 2)} s = "
        f"{_fmt(row.get('throughput_tps'))} transfers/s; per {row.get('latency_of')}: "
        f"p50 {_fmt(row.get('p50_ms'), 2)} ms, p99 {_fmt(row.get('p99_ms'), 2)} ms; "
        f"peak RSS {_fmt(rss)} MB; CPU {_fmt(row.get('cpu_ms_per_transfer'), 2)} ms/transfer; "
        f"other processes {_fmt(row.get('other_cpu_pct'))}% CPU"
        + (f"; target {row['target']}: {_fmt(row.get('target_met'))}" if row.get("target") else "")
        + (f"; {row['errors']} errors" if row.get("errors") else ""),
        flush=True,
    )
    for note in row.get("notes") or ():
        print(f"    note: {note}", flush=True)


# ------------------------------------------------------------------------ machine info


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_total_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _git_commit() -> str | None:
    """The commit measured; CORRIDOR_BENCH_COMMIT names it for a tree without .git."""
    if os.environ.get("CORRIDOR_BENCH_COMMIT"):
        return os.environ["CORRIDOR_BENCH_COMMIT"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip() or None
    if commit and dirty.stdout.strip():
        commit += "-dirty"
    return commit


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, Any]:
    """Where and with what the figures were measured, for the JSON output."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_total_mb": _memory_total_mb(),
        "load_average_at_start": list(load) if load else None,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite_library": sqlite3.sqlite_version,
        "packages": package_versions(),
        "git_commit": _git_commit(),
    }


def write_json(path: Path, results: Sequence[dict[str, Any]], info: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": list(results)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU time one process has used so far, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are fixed.
    fields_after_name = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields_after_name[11]), int(fields_after_name[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its living descendants (uvicorn workers)."""
    return sum(cpu_seconds(p) or 0.0 for p in process_tree(pid))


def machine_busy_seconds() -> float | None:
    """CPU time all processes of the machine have used since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields_ = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    busy = sum(fields_) - fields_[3] - (fields_[4] if len(fields_) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used during a scenario: by the benchmark's own processes, and by everything else.

    The machine may be shared (other test runs, other services): `other_pct` says how much
    of it was busy with something else while the figures were taken (PostgreSQL's server
    processes count as "other": they are part of the workload on PostgreSQL scenarios).
    """

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self._wall = time.perf_counter()
        self._own = self._own_now()
        self._machine = machine_busy_seconds()
        self.wall_s = self.own_s = 0.0
        self.other_s: float | None = None

    def _own_now(self) -> float:
        own = time.process_time()
        if self.server_pid is not None:
            own += tree_cpu_seconds(self.server_pid)
        return own

    def stop(self) -> CpuMeter:
        self.wall_s = time.perf_counter() - self._wall
        self.own_s = self._own_now() - self._own
        machine = machine_busy_seconds()
        if machine is not None and self._machine is not None:
            self.other_s = max(0.0, machine - self._machine - self.own_s)
        return self

    def record(self, result: Result) -> None:
        """CPU per transfer of our processes, and other processes' load, into a result."""
        if result.transfers:
            result.cpu_ms_per_transfer = 1000 * self.own_s / result.transfers
        if self.other_s is not None and self.wall_s > 0:
            result.other_cpu_pct = 100 * self.other_s / self.wall_s
