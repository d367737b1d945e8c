"""Benchmark: embedding extraction scans/min per core (demo and full size; ssl and, when the
[pretrained] extra is installed, astra), SSL training seconds per epoch on CPU, and (not with
--quick) the linear-probe acceptance of ``ctpheno.eval.probe``: SSL vs random weights on 48
phantoms. JSON out.

    python benchmarks/bench_embeddings.py --out benchmarks/out [--threads 1] [--quick]   (writes embeddings.json)
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True, help="folder for embeddings.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="demo size only, 2 scans")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ctpheno.config.embeddings import EmbeddingsConfig
    from ctpheno.features.deep_embeddings.extract import embed_lungs, load_encoder
    from ctpheno.features.deep_embeddings.patches import lung_grid
    from ctpheno.features.deep_embeddings.pretrained import astra_available, embed_chest, load_astra_encoder
    from ctpheno.features.deep_embeddings.ssl import train_encoder, training_scan
    from ctpheno.synth import make_phantom

    cfg = EmbeddingsConfig(device="cpu")
    out: dict = {"threads": args.threads, "torch": torch.__version__, "config": json.loads(cfg.model_dump_json())}
    sizes = ["demo"] if args.quick else ["demo", "full"]
    n = 2 if args.quick else 3
    for size in sizes:
        phantoms = [make_phantom(seed=900 + i, size=size, subtype="centrilobular", emphysema_fraction=0.2)
                    for i in range(n)]
        scans = [training_scan(f"b{i}", lung_grid(p.image.array, p.lungs.array, p.image.spacing_mm,
                                                  target_mm=cfg.spacing_mm, hu_window=cfg.hu_window),
                               patch_size=cfg.patch_size, min_lung_fraction=cfg.min_lung_fraction)
                 for i, p in enumerate(phantoms)]
        with tempfile.TemporaryDirectory() as tmp:
            tcfg = cfg.model_copy(update={"epochs": 1})
            t0 = time.perf_counter()
            train_encoder(scans, cfg=tcfg, out_dir=tmp)
            out[f"ssl_train_s_per_epoch_{size}_{n}scans"] = time.perf_counter() - t0
            enc = load_encoder(cfg, checkpoint=Path(tmp) / "encoder.pt")
            t0 = time.perf_counter()
            for p in phantoms:
                embed_lungs(p.image.array, p.lungs.array, p.image.spacing_mm, encoder=enc, cfg=cfg)
            dt = (time.perf_counter() - t0) / n
            out[f"ssl_scans_per_min_per_core_{size}"] = 60.0 / dt / args.threads
        if astra_available():
            model = load_astra_encoder()
            t0 = time.perf_counter()
            embed_chest(phantoms[0].image, model)
            dt = time.perf_counter() - t0
            out[f"astra_scans_per_min_per_core_{size}"] = 60.0 / dt / args.threads
            out[f"astra_seconds_per_scan_{size}"] = dt
        else:
            out["astra"] = "skipped: pip install 'ctpheno[pretrained]'"
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_result

    tables = []
    if not args.quick:
        tables.append(probe_table(out))
    rows = [[k, round(v, 2) if isinstance(v, float) else v] for k, v in out.items() if k not in ("config", "probe")]
    tables.insert(0, {"title": f"3D CNN embeddings on CPU ({args.threads} thread(s))", "columns": ["measure", "value"],
                      "rows": rows})
    print(write_result(args.out, "embeddings", {"title": "Embeddings", "quick": args.quick,
                                                "tables": tables, "raw": out}))


def probe_table(out: dict) -> dict:
    """SSL vs random weights by linear probes on 48 phantoms (the protocol of tests/embeddings/test_probe.py)."""
    from ctpheno.config.embeddings import EmbeddingsConfig
    from ctpheno.eval.probe import PROBE_SSL, embed_cohort, phantom_cohort, probe_scores, train_probe_encoder

    torch.set_num_threads(2)
    cohort = phantom_cohort(48)
    y, sub = [s.fraction for s in cohort], [s.subtype for s in cohort]
    rows, res = [], {}
    for name, update in (("ssl (contrastive + density)", {}), ("ssl (contrastive only)", {"density_weight": 0.0})):
        cfg = EmbeddingsConfig(**{**PROBE_SSL, **update})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_probe_encoder(cohort, cfg, tmp)
            train_s = time.perf_counter() - t0
            sc = probe_scores(embed_cohort(cohort, cfg, Path(tmp) / "encoder.pt"), y, sub)
        res[name] = {"fraction_r2": sc.fraction_r2, "subtype_accuracy": sc.subtype_accuracy, "train_s": train_s}
    rnd = []
    for seed in (0, 1, 2):
        cfg = EmbeddingsConfig(**{**PROBE_SSL, "model": "random", "seed": seed})
        sc = probe_scores(embed_cohort(cohort, cfg), y, sub)
        rnd.append(sc)
        res[f"random (seed {seed})"] = {"fraction_r2": sc.fraction_r2, "subtype_accuracy": sc.subtype_accuracy}
    base_r2 = float(np.mean([r.fraction_r2 for r in rnd]))
    base_acc = float(np.mean([r.subtype_accuracy for r in rnd]))
    for name, r in res.items():
        rows.append([name, round(r["fraction_r2"], 3), round(r["fraction_r2"] - base_r2, 3),
                     round(r["subtype_accuracy"], 3), round(r["subtype_accuracy"] - base_acc, 3),
                     round(r["train_s"], 1) if "train_s" in r else ""])
    rows.append(["random (mean of 3 seeds)", round(base_r2, 3), 0.0, round(base_acc, 3), 0.0, ""])
    out["probe"] = res
    return {"title": "Linear probes, SSL vs random weights (48 phantoms, 5 x 4-fold CV; patch 16^3 at 3 mm, width 8, "
                     "8 epochs, seed 0; gap = score minus the mean of the random seeds)",
            "columns": ["encoder", "fraction R2", "gap", "subtype accuracy", "gap", "training s"], "rows": rows}


if __name__ == "__main__":
    main()
