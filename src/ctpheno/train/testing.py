"""A synthetic work directory with known latents, for tests and demos of the train/eval stages.

Features are generated from each subject's latent subtype (none, centrilobular, panlobular,
paraseptal, airway), emphysema fraction *f* and airway wall thickness *t*; spirometry comes from
:func:`ctpheno.synth.spirometry.simulate_clinical` (the same generator as the synthetic cohort),
so the oracle R^2 of FEV1 %pred is known (:func:`ctpheno.synth.spirometry.oracle_r2`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.layout import WorkDir
from ..synth.spirometry import oracle_r2, simulate_clinical

SUBTYPES = ("none", "centrilobular", "panlobular", "paraseptal", "airway")
ZONE_WEIGHT = {
    "none": (1.0, 1.0, 1.0),
    "centrilobular": (1.7, 0.9, 0.4),
    "panlobular": (0.4, 0.9, 1.7),
    "paraseptal": (1.2, 1.0, 0.8),
    "airway": (1.0, 1.0, 1.0),
}
"""Relative emphysema extent in upper / middle / lower zones per subtype."""
LAC_D = {"none": 2.0, "centrilobular": 1.2, "panlobular": 0.8, "paraseptal": 1.9, "airway": 2.0}
"""Power-law exponent D of low-attenuation clusters (large confluent clusters -> small D)."""


def synthetic_latents(n: int, *, seed: int) -> pd.DataFrame:
    """Balanced subtypes, emphysema fraction and airway wall thickness per subject."""
    rng = np.random.default_rng(seed)
    sub = np.array([SUBTYPES[i % len(SUBTYPES)] for i in range(n)])
    rng.shuffle(sub)
    f = np.where(np.isin(sub, ("none", "airway")), rng.uniform(0.0, 0.01, n), rng.uniform(0.06, 0.3, n))
    wall = np.where(sub == "airway", rng.normal(1.7, 0.15, n), rng.normal(1.05, 0.08, n))
    return pd.DataFrame({"subtype": sub, "emphysema_fraction": f, "wall_mm": wall})


def write_synthetic_workdir(
    root: str | Path,
    *,
    n: int = 60,
    seed: int = 0,
    n_embed: int = 64,
    n_radiomics: int = 30,
    embed_regions: tuple[str, ...] = ("whole",),
    noise: float = 1.0,
) -> dict:
    """Write manifest, clinical, QCT (long), radiomics (wide) and embeddings tables into ``root``.

    Returns ``{"latents": DataFrame, "oracle_r2": float, "workdir": WorkDir}``; the clinical table
    carries the true ``subtype`` so clustering can be scored against it.
    """
    rng = np.random.default_rng(seed + 1)
    wd = WorkDir(root).ensure()
    lat = synthetic_latents(n, seed=seed)
    subj = [f"p-{i:012x}" for i in range(n)]
    scans = [f"s-{i:012x}" for i in range(n)]
    clin = simulate_clinical(
        rng,
        f=lat["emphysema_fraction"].to_numpy(),
        wall_mm=lat["wall_mm"].to_numpy(),
        subtype=lat["subtype"].to_numpy(),
    )
    clinical = pd.DataFrame({"subject_id": subj, **clin, "subtype": lat["subtype"]})
    oracle = oracle_r2(
        clinical["fev1_pct_pred"].to_numpy(),
        lat["emphysema_fraction"].to_numpy(),
        lat["wall_mm"].to_numpy(),
        lat["subtype"].to_numpy(),
    )
    manifest = pd.DataFrame(
        {
            "scan_id": scans,
            "subject_id": subj,
            "usable": True,
            "selected": True,
            "acquisition_offset_days": 0.0,
        }
    )
    qrows, rrows, erows = [], [], []
    proj = rng.normal(size=(8, n_embed))
    for i in range(n):
        s, f, t = lat.loc[i, "subtype"], lat.loc[i, "emphysema_fraction"], lat.loc[i, "wall_mm"]
        zw = dict(zip(("upper", "middle", "lower"), ZONE_WEIGHT[s]))
        zw.update(whole=1.0, right=1.0, left=1.0)
        for region, w in zw.items():
            laa = max(0.0, 100 * f * w + rng.normal(0, 0.6 * noise))
            qrows.append(
                dict(
                    scan_id=scans[i],
                    region=region,
                    lung_volume_ml=rng.normal(5500 + 3000 * f, 500) / (1 if region == "whole" else 3),
                    mld_hu=-850 - 4.0 * laa + 40 * (t - 1) + rng.normal(0, 6 * noise),
                    laa950_pct=laa,
                    laa910_pct=laa * 1.8 + 4 + rng.normal(0, 1.5 * noise),
                    laa856_pct=laa * 2.5 + 20 + rng.normal(0, 3 * noise),
                    perc15_hu=-905 - 3.0 * laa + rng.normal(0, 5 * noise),
                    perc10_hu=-915 - 3.2 * laa + rng.normal(0, 5 * noise),
                    hu_sd=110 + 20 * (t - 1) + rng.normal(0, 5 * noise),
                    lac_d_950=LAC_D[s] + rng.normal(0, 0.12 * noise),
                    laa950_upper_lower_ratio=(ZONE_WEIGHT[s][0] / ZONE_WEIGHT[s][2]) * (1 if f > 0.02 else 0)
                    + rng.normal(0, 0.15 * noise),
                )
            )
        rad = {"scan_id": scans[i], "region": "whole"}
        for j in range(n_radiomics):  # texture features: a few carry the latents, the rest are noise
            signal = [100 * f, 10 * (t - 1), 5 * LAC_D[s], 0.0, 0.0, 0.0][j % 6]
            rad[f"original_glcm_feature{j:02d}"] = signal + rng.normal(0, 1.0 * noise)
        rrows.append(rad)
        onehot = np.array([s == k for k in SUBTYPES], float)
        z = np.concatenate([onehot, [10 * f, t - 1, rng.normal()]])
        for region in embed_regions:
            e = z @ proj + rng.normal(0, 0.5 * noise, n_embed)
            erows.append(
                {
                    "scan_id": scans[i],
                    "region": region,
                    "model": "ssl",
                    **{f"emb_{k:03d}": float(v) for k, v in enumerate(e)},
                }
            )
    manifest.to_parquet(wd.manifest)
    clinical.to_parquet(wd.clinical)
    wd.features_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(qrows).to_parquet(wd.qct)
    pd.DataFrame(rrows).to_parquet(wd.radiomics)
    pd.DataFrame(erows).to_parquet(wd.embeddings)
    return {"latents": lat.assign(subject_id=subj), "oracle_r2": float(oracle), "workdir": wd}
