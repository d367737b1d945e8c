"""Run every ``benchmarks/bench_*.py`` and regenerate ``docs/results.md`` from their JSON.

    python benchmarks/run_all.py --out benchmarks/out --results docs/results.md [--quick]
    python benchmarks/run_all.py --out benchmarks/out --results docs/results.md --render-only

Each script writes ``<out>/<name>.json`` (see ``common.py``). The page gets one
section per result: its tables, its plots (PNG files in ``<results dir>/figures/``)
and the machine it ran on. ``docs/scaling.md``'s marked placeholders
(``<!-- bench:NAME -->value<!-- /bench -->``) are filled from the results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_scripts(out: Path, *, quick: bool, only: list[str] | None = None,
                timeout_s: float = 3600, scripts_dir: Path = HERE) -> list[dict]:
    """Run each bench script in its own process; a crash is recorded, the others still run."""
    out.mkdir(parents=True, exist_ok=True)
    status = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    for script in sorted(Path(scripts_dir).glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        # a script that has no quick mode runs at its own (small) default size
        src = script.read_text()
        has_quick = "--quick" in src or ("from common import" in src and "parse_args" in src)
        quick_flag = ["--quick"] if quick and has_quick else []
        cmd = [sys.executable, str(script), "--out", str(out)] + quick_flag
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout_s, capture_output=True, text=True)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            rc, tail = -1, f"timed out after {timeout_s} s"
        status.append({"script": script.name, "rc": rc, "seconds": round(time.perf_counter() - t0, 1),
                       "tail": tail})
        print(f"{script.name}: exit {rc} in {status[-1]['seconds']} s", flush=True)
        if rc != 0:
            print(tail, file=sys.stderr)
    return _merge_status(out, status)


def _merge_status(out: Path, status: list[dict]) -> list[dict]:
    """Record each script's last run in ``out/runs/status.json`` (merged by script name), so a
    partial run (``--only``) or ``--render-only`` still lists every script with its last exit code."""
    path = out / "runs" / "status.json"
    known = {s["script"]: s for s in (json.loads(path.read_text()) if path.is_file() else [])}
    known.update({s["script"]: {k: s[k] for k in ("script", "rc", "seconds")} for s in status})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(known.values(), key=lambda s: s["script"]), indent=1))
    this_run = {s["script"]: s for s in status}
    return [this_run.get(k, known[k]) for k in sorted(known)]


def _saved_status(out: Path) -> list[dict] | None:
    path = out / "runs" / "status.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _md_table(table: dict) -> str:
    cols = table["columns"]
    lines = [f"**{table['title']}**", "", "| " + " | ".join(map(str, cols)) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in table["rows"]]
    if table.get("note"):
        lines += ["", f"_{table['note']}_"]
    return "\n".join(lines) + "\n"


def _plot(name: str, spec: dict, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    if spec.get("kind") == "bar":
        ax.bar([str(x) for x in spec["x"]], spec["y"], color="#4c72b0")
    else:
        ax.plot(spec["x"], spec["y"], marker="o", color="#4c72b0", label="measured")
        if name == "throughput" and spec["y"] and spec["x"][0]:
            ideal = [spec["y"][0] * x / spec["x"][0] for x in spec["x"]]
            ax.plot(spec["x"], ideal, ls="--", color="grey", label="linear scaling")
            ax.legend()
        ax.set_xticks(spec["x"])
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec.get("ylabel", ""))
    ax.set_title(name.replace("_", " "))
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)


def _machine(m: dict) -> str:
    v = m.get("versions", {})
    keys = ["python", "ctpheno", "numpy", "SimpleITK", "dask", "distributed", "zarr", "torch", "pyradiomics-bhklab"]
    return (f"{m.get('cpu')}, {m.get('usable_cores')} usable of {m.get('logical_cores')} logical cores, "
            f"{m.get('memory_gib')} GiB RAM; {m.get('os')}; "
            + ", ".join(f"{k} {v[k]}" for k in keys if k in v))


def render(out: Path, results: Path, status: list[dict] | None = None) -> str:
    """Write ``results`` (Markdown + figures) from every JSON in ``out``; returns the text."""
    files = sorted(out.glob("*.json"))
    fig_dir = results.parent / "figures"
    lines = ["# Benchmark results", "",
             f"<!-- generated by benchmarks/run_all.py on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             "from benchmarks/out/*.json; do not edit -->", ""]
    if not files:
        lines += ["No benchmark results yet: run `make bench`.", ""]
    for f in files:
        data = json.loads(f.read_text())
        name = data.get("name", f.stem)
        lines += [f"## {data.get('title', name)}", ""]
        if data.get("quick"):
            lines += ["> **Quick (smoke) run** on small inputs: these numbers are not the full-size measurement.", ""]
        lines += [f"Machine: {_machine(data.get('machine', {}))}", ""]
        for key, why in sorted(data.get("missing", {}).items()):
            lines.append(f"- `{key}`: {why}")
        if data.get("missing"):
            lines.append("")
        for table in data.get("tables", []):
            lines.append(_md_table(table))
        for pname, spec in data.get("plots", {}).items():
            if not spec.get("x"):
                continue
            png = fig_dir / f"bench_{name}_{pname}.png"
            _plot(pname, spec, png)
            lines += [f"![{pname}]({os.path.relpath(png, results.parent)})", ""]
    if status:
        lines += ["## Scripts run", "", "| script | exit | seconds |", "|---|---|---|"]
        lines += [f"| {s['script']} | {s['rc']} | {s['seconds']} |" for s in status]
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    return text


def fill_placeholders(out: Path, doc: Path) -> int:
    """Replace ``<!-- bench:NAME -->old<!-- /bench -->`` in ``doc`` with the measured values."""
    if not doc.exists():
        return 0
    values: dict[str, object] = {}
    for f in sorted(out.glob("*.json")):
        values.update(json.loads(f.read_text()).get("placeholders", {}))
    text = doc.read_text()
    n = 0

    def sub(m: re.Match) -> str:
        nonlocal n
        if m.group(1) in values:
            n += 1
            return f"<!-- bench:{m.group(1)} -->{values[m.group(1)]}<!-- /bench -->"
        return m.group(0)

    new = re.sub(r"<!-- bench:(\w+) -->(.*?)<!-- /bench -->", sub, text, flags=re.S)
    if new != text:
        doc.write_text(new)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="small inputs (smoke run)")
    ap.add_argument("--only", nargs="*", help="run only these benchmark names (bench_<name>.py)")
    ap.add_argument("--render-only", action="store_true", help="regenerate the page from existing JSON")
    ap.add_argument("--scaling", type=Path, default=None,
                    help="document whose bench placeholders to fill (default: docs/scaling.md beside --results)")
    args = ap.parse_args(argv)
    status = None if args.render_only else run_scripts(args.out, quick=args.quick, only=args.only)
    render(args.out, args.results, status if status is not None else _saved_status(args.out))
    if not args.quick:
        fill_placeholders(args.out, args.scaling or args.results.parent / "scaling.md")
    print(f"wrote {args.results}")
    ran = {f"bench_{n}.py" for n in args.only} if args.only else None
    return 1 if status and any(s["rc"] != 0 for s in status if ran is None or s["script"] in ran) else 0


if __name__ == "__main__":
    sys.exit(main())
