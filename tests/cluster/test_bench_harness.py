"""benchmarks/run_all.py: runs bench scripts, survives a crash, renders results.md and fills scaling.md."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}_mod", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


TOY = textwrap.dedent("""
    from common import parse_args, write_result
    args = parse_args("toy")
    write_result(args.out, "toy", {"title": "Toy", "quick": args.quick,
        "tables": [{"title": "T", "columns": ["workers", "scans/hour"], "rows": [[1, 10.0], [2, 19.0]],
                    "note": "n"}],
        "plots": {"throughput": {"x": [1, 2], "y": [10.0, 19.0], "xlabel": "workers", "ylabel": "scans/h"}},
        "missing": {"embed": "not available: x"},
        "placeholders": {"CORE_SECONDS_PER_SCAN": 12.5}})
""")


def test_run_render_and_fill(tmp_path):
    run_all = _load("run_all")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "bench_toy.py").write_text(TOY)
    (scripts / "bench_crash.py").write_text("raise SystemExit('boom')\n")
    (scripts / "bench_noquick.py").write_text(
        "import argparse, json, pathlib\nap = argparse.ArgumentParser(); ap.add_argument('--out')\n"
        "a = ap.parse_args(); pathlib.Path(a.out, 'nq.json').write_text(json.dumps({'title': 'NQ'}))\n")
    out = tmp_path / "out"
    status = {s["script"]: s for s in run_all.run_scripts(out, quick=True, scripts_dir=scripts)}
    assert status["bench_toy.py"]["rc"] == 0 and status["bench_noquick.py"]["rc"] == 0
    assert status["bench_crash.py"]["rc"] == 1 and "boom" in status["bench_crash.py"]["tail"]
    data = json.loads((out / "toy.json").read_text())
    assert data["quick"] is True and data["machine"]["logical_cores"] >= 1 and "numpy" in data["machine"]["versions"]

    # a partial rerun (--only) keeps the other scripts' last status for the page
    (scripts / "bench_crash.py").write_text("print('fixed')\n")
    merged = {s["script"]: s for s in run_all.run_scripts(out, quick=True, only=["crash"], scripts_dir=scripts)}
    assert merged["bench_crash.py"]["rc"] == 0 and merged["bench_toy.py"]["rc"] == 0 and len(merged) == 3
    assert [s["rc"] for s in run_all._saved_status(out)] == [0, 0, 0]
    (scripts / "bench_crash.py").write_text("raise SystemExit('boom')\n")
    status = {s["script"]: s for s in run_all.run_scripts(out, quick=True, only=["crash"], scripts_dir=scripts)}

    results = tmp_path / "docs" / "results.md"
    text = run_all.render(out, results, list(status.values()))
    assert "## Toy" in text and "| 2 | 19.0 |" in text and "Quick (smoke) run" in text
    assert "`embed`: not available: x" in text and "| bench_crash.py | 1 |" in text
    png = results.parent / "figures" / "bench_toy_throughput.png"
    assert png.stat().st_size > 1000 and "](figures/bench_toy_throughput.png)" in text

    scaling = tmp_path / "docs" / "scaling.md"
    scaling.write_text("C = <!-- bench:CORE_SECONDS_PER_SCAN -->18 (placeholder)<!-- /bench --> s; "
                       "<!-- bench:OTHER -->kept\nover lines<!-- /bench -->")
    assert run_all.fill_placeholders(out, scaling) == 1
    assert scaling.read_text() == ("C = <!-- bench:CORE_SECONDS_PER_SCAN -->12.5<!-- /bench --> s; "
                                   "<!-- bench:OTHER -->kept\nover lines<!-- /bench -->")


def test_projection_arithmetic():
    common = _load("common")
    table = common.projection_table(36.0, 2048)
    # 203,111 scans x 36 core-s = 2,031 core-hours; SLURM 320 workers at 0.85 -> 7.5 h
    assert "2,031 core-hours" in table and "| 10 x 32 | 7.5 |" in table
    # memory per worker 1.5 x 2 GiB = 3 GiB; 32 x 3 GiB does not fit 64 GiB nodes (90 % usable)
    assert "| 3.0 | no: use 19 workers/node |" in table


def test_repository_scaling_doc_has_placeholders():
    text = (BENCH.parent / "docs" / "scaling.md").read_text()
    for key in ("CORE_SECONDS_PER_SCAN", "PEAK_WORKER_MIB", "SCALING_2W", "PROJECTION_TABLE", "STATUS"):
        assert f"<!-- bench:{key} -->" in text
    assert "203,111" in text and "11.1 TB" in text
