"""A synthetic COPD cohort on disk: :func:`write_cohort`.

Layout written under ``out``::

    images/<opaque>/ *.dcm         one DICOM series per subject (or images/<opaque>.nii.gz)
    images/<opaque>-2/ *.dcm       a second (sharp) reconstruction of the same study, for the
                                   ``two_reconstructions`` fraction of subjects (DICOM only)
    clinical.csv                   demographics, smoking, spirometry, GOLD, PRISm, FEV1 decline
    truth.parquet                  per-subject latents and truth measurements (TRUTH_COLUMNS)
    truth/<subject_id>.nii.gz      detailed labels (1 R, 2 L, 3 airways, 4 vessels, 5 emphysema)
    truth/<subject_id>_lungs.nii.gz  perfect lung segmentation (1 R, 2 L, 3 airways)
    cohort.json                    seed, size, n, spirometry model, oracle R^2, counts

The cohort *plan* (latents, demographics, spirometry) is drawn up front from
``seed``; each subject's phantom is then rendered from its own seed
``SeedSequence([seed, index])``, so pixel data do not depend on the order or
parallelism of rendering.
"""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cluster.runner import ScanTask, StageResult, run_stage
from ..errors import CTPhenoError
from ..io.layout import WorkDir
from ..io.tables import write_json, write_table
from ..vocab import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .disease import SUBTYPES
from .dicom import fake_patient, opaque_name, write_dicom_series
from .phantom import make_phantom
from .spirometry import MODEL, oracle_r2, simulate_clinical

STAGE = "synth"
CLINICAL_COLUMNS = ["subject_id", "age_years", "sex", "height_cm", "pack_years", "fev1_pct_pred", "fev1_fvc",
                    "gold_stage", "prism", "fev1_decline_ml_per_year", "fev1_l", "fvc_l"]
TRUTH_COLUMNS = ["subject_id", "subtype", "emphysema_fraction", "airway_wall_mm", "lung_volume_ml",
                 "right_lung_volume_ml", "left_lung_volume_ml", "laa950_pct", "perc15_hu",
                 "laa950_pct_rim", "perc15_hu_rim", "lung_volume_ml_rim",
                 "emphysema_fraction_realised", "kernel", "phantom_seed", "image_path", "rescale_intercept",
                 "slice_thickness_mm", "noise_hu", "manufacturer", "mas", "air_offset_hu",
                 "second_image_path", "second_kernel"]
EMPHYSEMA_RANGE = {"none": (0.0, 0.02), "centrilobular": (0.04, 0.38), "panlobular": (0.06, 0.40),
                   "paraseptal": (0.03, 0.15), "airway": (0.0, 0.04)}
WALL_RANGE_AIRWAY_MM = (1.6, 2.4)


class SynthCohortError(CTPhenoError):
    """A subject of the synthetic cohort could not be generated or written."""


def subject_seed(seed: int, index: int) -> int:
    """Phantom seed of subject ``index`` (independent of the other subjects)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def plan_cohort(*, n: int, seed: int, two_reconstructions: float = 0.0) -> pd.DataFrame:
    """Latents, demographics and spirometry of ``n`` subjects (no images).

    Subtypes are assigned round-robin (so every subtype appears once ``n >= 5``) in a
    seeded order; within a subtype the emphysema fractions are stratified over its range.
    A ``two_reconstructions`` fraction of the subjects (drawn from a stream of its own, so the
    rest of the plan does not depend on it) get a study with a smooth and a sharp series, the
    smooth one being their density series (``kernel`` ``smooth``, ``second_kernel`` ``sharp``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31 - 1]))
    subtype = np.array([SUBTYPES[i % len(SUBTYPES)] for i in range(n)])[rng.permutation(n)]
    f = np.zeros(n)
    wall = np.zeros(n)
    for s in SUBTYPES:
        idx = np.flatnonzero(subtype == s)
        m = len(idx)
        if m == 0:
            continue
        lo, hi = EMPHYSEMA_RANGE[s]
        u = (rng.permutation(m) + rng.random(m)) / m
        f[idx] = lo + (hi - lo) * u
        if s == "airway":
            u = (rng.permutation(m) + rng.random(m)) / m
            wall[idx] = WALL_RANGE_AIRWAY_MM[0] + np.diff(WALL_RANGE_AIRWAY_MM)[0] * u
        else:
            wall[idx] = np.clip(rng.normal(0.95, 0.1, m) + 0.8 * f[idx], 0.6, 1.6)
    kernel = np.where(rng.random(n) < 0.35, "sharp", "smooth")
    clin = simulate_clinical(rng, f=f, wall_mm=wall, subtype=subtype)
    study0 = date(2019, 1, 1)
    rows = []
    ids: set[str] = set()
    for i in range(n):
        sdate = study0 + timedelta(days=int(rng.integers(0, 4 * 365)))
        while True:
            pat = fake_patient(rng, age_years=int(clin["age_years"][i]), sex=str(clin["sex"][i]), study_date=sdate)
            if pat["PatientID"] not in ids:
                ids.add(pat["PatientID"])
                break
        rows.append({"subject_id": pat["PatientID"], "index": i, "subtype": subtype[i],
                     "emphysema_fraction": round(float(f[i]), 4), "airway_wall_mm": round(float(wall[i]), 3),
                     "kernel": kernel[i], "phantom_seed": subject_seed(seed, i), "study_date": sdate.isoformat(),
                     "patient": pat, **{k: v[i] for k, v in clin.items()}})
    plan = pd.DataFrame(rows)
    two = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31 - 3])).random(n) < two_reconstructions
    plan["second_kernel"] = np.where(two, "sharp", "")
    plan.loc[two, "kernel"] = "smooth"
    return plan


def truth_metrics(hu: np.ndarray, lungs: np.ndarray, spacing_mm: tuple[float, float, float]) -> dict[str, float]:
    """LAA-950, Perc15 and lung volumes exactly as the features stage defines them.

    ``mask = lungs in {1, 2}``; ``laa950_pct = 100 * count(hu <= -950) / n``;
    ``perc15_hu = np.percentile(hu[mask], 15)`` (linear); volume = ``n * prod(spacing) / 1000``.
    """
    mask = (lungs == LABEL_RIGHT_LUNG) | (lungs == LABEL_LEFT_LUNG)
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise SynthCohortError("phantom has an empty lung mask; this is a generator bug")
    vox_ml = float(np.prod(spacing_mm)) / 1000.0
    vals = hu[mask]
    return {"lung_volume_ml": n * vox_ml,
            "right_lung_volume_ml": int(np.count_nonzero(lungs == LABEL_RIGHT_LUNG)) * vox_ml,
            "left_lung_volume_ml": int(np.count_nonzero(lungs == LABEL_LEFT_LUNG)) * vox_ml,
            "laa950_pct": 100.0 * int(np.count_nonzero(vals <= -950)) / n,
            "perc15_hu": float(np.percentile(vals, 15))}


RIM_METRICS = ("laa950_pct", "perc15_hu", "lung_volume_ml")
"""The :func:`truth_metrics` that the pleural-rim convention moves (``*_rim`` columns of ``truth.parquet``)."""


def rim_layer_metrics(hu: np.ndarray, lungs: np.ndarray, spacing_mm: tuple[float, float, float]) -> dict[str, float]:
    """:func:`truth_metrics` on the truth mask plus its whole outer boundary layer: the 6-connected
    voxels next to the lungs that are not airway lumen (the far end of the pleural-rim convention)."""
    from scipy import ndimage as ndi

    lung = (lungs == LABEL_RIGHT_LUNG) | (lungs == LABEL_LEFT_LUNG)
    layer = ndi.binary_dilation(lung, ndi.generate_binary_structure(3, 1)) & ~lung & (lungs == 0)
    grown = lungs.copy()
    grown[layer] = LABEL_RIGHT_LUNG  # side does not matter for the whole-lung metrics
    m = truth_metrics(hu, grown, spacing_mm)
    return {k: m[k] for k in RIM_METRICS}


def rim_truth_bounds(hu: np.ndarray, lungs: np.ndarray, spacing_mm: tuple[float, float, float],
                     ) -> dict[str, tuple[float, float]]:
    """Lowest and highest LAA-950, Perc15 and lung volume that the pleural-rim convention allows.

    The generator's lung label ends at the half-maximum of the blurred lung edge; a segmentation
    that follows expert contours (:mod:`ctpheno.preprocess.pleura`) also takes partial-volume
    voxels just outside it. The two ends of that convention are the truth mask itself and the truth
    mask plus its outer boundary layer (:func:`rim_layer_metrics`). A correct mask's metrics lie
    between them; a mask that misses lung or leaks past the first layer does not. Returns
    ``{metric: (low, high)}`` for :data:`RIM_METRICS`.
    """
    a, b = truth_metrics(hu, lungs, spacing_mm), rim_layer_metrics(hu, lungs, spacing_mm)
    return {k: (min(a[k], b[k]), max(a[k], b[k])) for k in RIM_METRICS}


def render_subject(task: ScanTask) -> pd.DataFrame:
    """Per-subject work (top-level, picklable): make the phantom and write image + truth files."""
    import SimpleITK as sitk

    inp = task.inputs
    out = Path(inp["out"])
    second = inp.get("second_kernel") or ""
    ph = make_phantom(seed=int(inp["phantom_seed"]), size=inp["size"], subtype=inp["subtype"],
                      emphysema_fraction=float(inp["emphysema_fraction"]),
                      airway_wall_mm=float(inp["airway_wall_mm"]), kernel=inp["kernel"],
                      also_kernels=(second,) if second else ())
    prm = ph.params
    # both storage conventions in every cohort: even subjects -1024/1, odd subjects 0/1
    intercept = -1024 if int(inp["index"]) % 2 == 0 else 0
    token = inp["token"]
    second_rel = ""
    if inp["fmt"] == "dicom":
        entropy = f"ctpheno-synth/{inp['seed']}/{inp['index']}"
        series = [(token, ph.image, prm["kernel_name"], entropy, 2)]
        if second:
            series.append((f"{token}-2", ph.reconstructions[second], prm["kernel_name_by_class"][second],
                           f"{entropy}/{second}", 3))
        for name, image, kernel_name, series_entropy, number in series:
            tmp = out / "images" / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            write_dicom_series(image, tmp, patient=inp["patient"], uid_entropy=entropy,
                               rescale_intercept=intercept, manufacturer=prm["manufacturer"],
                               scanner_model=prm["scanner_model"], kernel_name=kernel_name,
                               slice_thickness_mm=float(prm["slice_thickness_mm"]),
                               study_date=date.fromisoformat(inp["study_date"]),
                               pixel_padding_hu=-3024 if prm["fov_padding"] else None,
                               series_entropy=series_entropy, series_number=number)
            shutil.rmtree(out / "images" / name, ignore_errors=True)
            tmp.rename(out / "images" / name)
        rel = Path("images") / token
        second_rel = f"images/{token}-2" if second else ""
    else:
        rel = Path("images") / f"{token}.nii.gz"
        (out / "images").mkdir(parents=True, exist_ok=True)
        _write_nifti(ph.image.to_sitk(), out / rel, sitk)
    sid = inp["subject_id"]
    _write_nifti(ph.labels.to_sitk(), out / "truth" / f"{sid}.nii.gz", sitk)
    _write_nifti(ph.lungs.to_sitk(), out / "truth" / f"{sid}_lungs.nii.gz", sitk)
    m = truth_metrics(ph.image.array, ph.lungs.array, ph.image.spacing_mm)
    rim = rim_layer_metrics(ph.image.array, ph.lungs.array, ph.image.spacing_mm)
    m.update({f"{k}_rim": v for k, v in rim.items()})
    row = {"subject_id": sid, "subtype": inp["subtype"], "emphysema_fraction": float(inp["emphysema_fraction"]),
           "airway_wall_mm": float(inp["airway_wall_mm"]), **m,
           "emphysema_fraction_realised": float(prm["emphysema_fraction_realised"]), "kernel": inp["kernel"],
           "phantom_seed": int(inp["phantom_seed"]), "image_path": rel.as_posix(),
           "rescale_intercept": intercept, "slice_thickness_mm": float(prm["slice_thickness_mm"]),
           "noise_hu": float(prm["noise_hu"]), "manufacturer": prm["manufacturer"], "mas": float(prm["mas"]),
           "air_offset_hu": float(prm["air_offset_hu"]), "second_image_path": second_rel,
           "second_kernel": second if second_rel else ""}
    return pd.DataFrame([row], columns=TRUTH_COLUMNS)


def _write_nifti(img: Any, dest: Path, sitk: Any) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp.nii.gz")
    sitk.WriteImage(img, str(tmp), True)
    tmp.replace(dest)


def write_cohort(out: Path, *, n: int, seed: int, size: str = "demo", fmt: str = "dicom", client: Any = None,
                 workdir: WorkDir | None = None, force: bool = False, two_reconstructions: float = 0.0) -> Path:
    """Generate and write a synthetic cohort of ``n`` subjects under ``out``; returns ``out``.

    Parameters
    ----------
    out
        Output folder (created).
    n, seed
        Number of subjects and the cohort seed (same seed -> byte-identical pixel data).
    size
        ``"demo"`` or ``"full"`` (see :func:`ctpheno.synth.make_phantom`).
    fmt
        ``"dicom"`` (one series folder per subject) or ``"nifti"``.
    client
        A ``distributed.Client``: one task per subject via :func:`ctpheno.cluster.run_stage`;
        ``None`` renders sequentially in this process.
    workdir
        Where resume markers and failures go (default ``<out>/.state``).
    force
        Re-render subjects already written with the same inputs.
    two_reconstructions
        Fraction of subjects whose study holds a smooth and a sharp reconstruction (DICOM only).

    Raises
    ------
    SynthCohortError
        When any subject failed (the failures table in ``workdir`` has the reasons).
    """
    out = Path(out)
    if size not in ("demo", "full"):
        raise ValueError(f"size must be 'demo' or 'full'; got {size!r}")
    if fmt not in ("dicom", "nifti"):
        raise ValueError(f"fmt must be 'dicom' or 'nifti'; got {fmt!r}")
    out.mkdir(parents=True, exist_ok=True)
    wd = workdir if workdir is not None else WorkDir(out / ".state")
    if not 0.0 <= two_reconstructions <= 1.0:
        raise ValueError(f"two_reconstructions must be a fraction in [0, 1]; got {two_reconstructions}")
    plan = plan_cohort(n=n, seed=seed, two_reconstructions=two_reconstructions if fmt == "dicom" else 0.0)
    plan["token"] = [opaque_name(seed, i, sid) for i, sid in zip(plan["index"], plan["subject_id"])]
    if fmt == "nifti":  # ingest identifies a NIfTI subject by its file name: the (opaque) token
        plan["subject_id"] = plan["token"]
    tasks = [ScanTask(scan_id=f"subject-{int(r['index']):05d}",
                      inputs={"out": str(out.resolve()), "seed": int(seed), "index": int(r["index"]), "size": size,
                              "fmt": fmt, "subject_id": r["subject_id"], "token": r["token"], "subtype": r["subtype"],
                              "emphysema_fraction": r["emphysema_fraction"], "airway_wall_mm": r["airway_wall_mm"],
                              "kernel": r["kernel"], "second_kernel": r["second_kernel"],
                              "phantom_seed": int(r["phantom_seed"]),
                              "study_date": r["study_date"], "patient": r["patient"]},
                      source=f"synthetic subject {int(r['index'])}", est_bytes=_est_bytes(size))
             for r in plan.to_dict("records")]
    res: StageResult = run_stage(render_subject, tasks, stage=STAGE, workdir=wd, client=client,
                                 cfg_hash=f"synth-v2-{seed}-{n}-{size}-{fmt}", force=force,
                                 output=wd.root / "synth_truth_parts.parquet", progress=True)
    if res.failed:
        raise SynthCohortError(f"{len(res.failed)} of {n} synthetic subjects failed ({res.failed[:3]}...); "
                               f"see {wd.failures}")
    truth = plan[["subject_id"]].merge(res.table, on="subject_id", how="left", validate="1:1")
    keep = set(truth.image_path) | {p for p in truth.second_image_path if p}
    _remove_stale(out, keep_images=keep, keep_subjects=set(truth.subject_id))
    write_table(truth[TRUTH_COLUMNS], out / "truth.parquet")
    clinical = plan[CLINICAL_COLUMNS].copy()
    clinical["prism"] = clinical["prism"].astype(bool)
    clinical.to_csv(out / "clinical.csv", index=False)
    meta = _cohort_meta(plan, seed=seed, n=n, size=size, fmt=fmt)
    meta["two_reconstructions"] = float(two_reconstructions)
    meta["n_series"] = int(n + (plan["second_kernel"] != "").sum())
    write_json(meta, out / "cohort.json")
    return out


def _remove_stale(out: Path, *, keep_images: set[str], keep_subjects: set[str]) -> None:
    """Delete series/label files of an earlier cohort written to the same folder (our names only),
    so that ingest never picks up images that the new clinical table does not describe."""
    token = re.compile(r"^[0-9a-f]{16}(-2)?(\.nii\.gz)?$")
    for p in (out / "images").iterdir() if (out / "images").exists() else []:
        if token.match(p.name) and f"images/{p.name}" not in keep_images:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in (out / "truth").glob("*.nii.gz") if (out / "truth").exists() else []:
        sid = p.name[: -len(".nii.gz")].removesuffix("_lungs")
        if (sid.isdigit() or token.match(sid)) and sid not in keep_subjects:
            p.unlink()


def _est_bytes(size: str) -> int:
    return int(0.4e9) if size == "demo" else int(2.2e9)  # measured peak: ~0.2 GB demo, 1.8 GB full


def population_oracle_r2(*, m: int, seed: int) -> float:
    """Oracle R^2 of FEV1 %pred on ``m`` subjects drawn at random from the cohort's prior."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31 - 2]))
    subtype = np.array(SUBTYPES)[rng.integers(0, len(SUBTYPES), m)]
    lo = np.array([EMPHYSEMA_RANGE[s][0] for s in subtype])
    hi = np.array([EMPHYSEMA_RANGE[s][1] for s in subtype])
    f = lo + (hi - lo) * rng.random(m)
    wall = np.where(subtype == "airway", rng.uniform(*WALL_RANGE_AIRWAY_MM, m),
                    np.clip(rng.normal(0.95, 0.1, m) + 0.8 * f, 0.6, 1.6))
    clin = simulate_clinical(rng, f=f, wall_mm=wall, subtype=subtype)
    return oracle_r2(clin["fev1_pct_pred"], f, wall, subtype)


def _cohort_meta(plan: pd.DataFrame, *, seed: int, n: int, size: str, fmt: str) -> dict[str, Any]:
    return {
        "generator": "ctpheno.synth", "version": 1, "seed": int(seed), "size": size, "n": int(n), "format": fmt,
        "spirometry_model": MODEL,
        "emphysema_fraction_range_by_subtype": EMPHYSEMA_RANGE,
        "airway_wall_mm_range_airway_subtype": WALL_RANGE_AIRWAY_MM,
        "oracle_r2_fev1_pct_pred": oracle_r2(plan["fev1_pct_pred"].to_numpy(), plan["emphysema_fraction"].to_numpy(),
                                             plan["airway_wall_mm"].to_numpy(), plan["subtype"].to_numpy()),
        "oracle_r2_fev1_pct_pred_population": population_oracle_r2(m=20000, seed=seed),
        "subtype_counts": {s: int((plan["subtype"] == s).sum()) for s in SUBTYPES},
        "gold_counts": {str(g): int((plan["gold_stage"] == g).sum()) for g in range(5)},
        "prism_count": int(plan["prism"].sum()),
        "imaging_latents": ["subtype", "emphysema_fraction", "airway_wall_mm"],
    }
