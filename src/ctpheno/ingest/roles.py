"""Which series of a study feeds which measurement: kernel classes, the density series, the airway series.

* ``kernel_class`` (manifest): :func:`ctpheno.ingest.kernels.classify_kernel` of Manufacturer +
  ConvolutionKernel. In a study with several usable series, a series whose kernel the table does
  not know is classified by its **measured noise texture** (:func:`noise_kernel_class`: a few
  adjacent slices are read and the mean frequency of their noise power spectrum decides,
  :func:`ctpheno.ingest.kernels.class_from_noise_texture`); ``kernel_class_source`` says
  ``header`` or ``noise``.
* ``selected`` (one per study, the **density** series; model stages key on it): rule
  ``smooth_kernel`` (default) prefers, in order, inspiratory series, slices no thicker than
  ``ingest.max_density_slice_mm``, the smoothest kernel class (smooth, medium, unknown, sharp),
  the thinnest slices, the most slices. Density is measured on the smooth reconstruction as in
  COPDGene and the CIP; a sharp kernel adds 5-10 pp of LAA-950.
* ``series_role``: ``density`` for the selected series; ``airway`` for the study's sharpest other
  inspiratory series when it is strictly sharper (``ingest.airway_series``): preprocess processes
  it too and the QCT stage measures the airway columns on it (``airway_scan_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import pandas as pd

from .kernels import DENSITY_RANK, SHARPNESS_RANK, class_from_noise_texture, classify_kernel
from .validate import is_lung_kernel

NOISE_PROBE_FILES = 4
"""Consecutive slices read at each of the two probe positions of :func:`noise_kernel_class`."""
PROBE_POSITIONS = (0.4, 0.6)
"""Where in the series (fraction of its slices) the probe slices are read."""


def noise_kernel_class(paths: Sequence[str]) -> str:
    """Kernel class of a DICOM series from the noise texture of a few adjacent slices (``unknown`` on failure)."""
    from ..errors import CTPhenoError
    from ..features.harmonise import noise_autocorrelation
    from ..io.readers import read_dicom_series

    paths = list(paths)
    if len(paths) < 2:
        return "unknown"
    pairs = []
    pixel = (1.0, 1.0)
    for pos in PROBE_POSITIONS:
        start = min(int(pos * len(paths)), max(len(paths) - NOISE_PROBE_FILES, 0))
        try:
            vol = read_dicom_series(paths[start : start + NOISE_PROBE_FILES])
        except (CTPhenoError, OSError, ValueError):
            return "unknown"
        arr = vol.array
        pixel = (vol.spacing_mm[1], vol.spacing_mm[2])
        pairs += [(arr[k], arr[k + 1]) for k in range(arr.shape[0] - 1)]
    texture = noise_autocorrelation(pairs, pixel)
    return class_from_noise_texture(texture.fav_lpmm(), max(pixel))


def assign_kernel_classes(df: pd.DataFrame, paths: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Add ``kernel_class`` and ``kernel_class_source`` (``header`` | ``noise`` | ``""``)."""
    df = df.copy()
    classes = [classify_kernel(m, k)[0] for m, k in zip(df["manufacturer"].fillna(""), df["kernel"].fillna(""))]
    df["kernel_class"] = classes
    df["kernel_class_source"] = ["header" if c != "unknown" else "" for c in classes]
    usable = df["usable"].astype(bool) & (df["format"] == "dicom")
    multi = df[usable].groupby("study_id")["scan_id"].transform("count") > 1
    for idx in multi[multi].index:
        if df.at[idx, "kernel_class"] == "unknown" and df.at[idx, "scan_id"] in paths:
            cls = noise_kernel_class(paths[df.at[idx, "scan_id"]])
            if cls != "unknown":
                df.at[idx, "kernel_class"] = cls
                df.at[idx, "kernel_class_source"] = "noise"
    return df


def _thickness(df: pd.DataFrame) -> pd.Series:
    return df["slice_thickness_mm"].fillna(df["spacing_z_mm"]).fillna(1e9).astype(float)


def _expiratory(df: pd.DataFrame) -> pd.Series:
    return df["reasons"].fillna("").str.contains("expiratory", regex=False).astype(int)


def select_series(
    df: pd.DataFrame, *, rule: str, lung_kernels: Sequence[str], max_density_slice_mm: float = 3.2
) -> pd.Series:
    """Boolean ``selected``: the series to analyse (density) in each study among the usable ones.

    ``smooth_kernel`` (see the module docstring); ``thinnest_lung_kernel`` (before kernel-aware
    selection: inspiratory, a kernel in ``lung_kernels``, thinnest, most slices — it picks the
    *sharp* reconstruction, which biases density); ``thinnest`` and ``most_slices`` use only
    thickness / slice count; ``all`` selects every usable series.
    """
    sel = pd.Series(False, index=df.index)
    usable = df[df["usable"].astype(bool)]
    if rule == "all":
        sel[usable.index] = True
        return sel
    thick = _thickness(usable)
    nz = -usable["size_z"].fillna(0).astype(float)
    if rule == "smooth_kernel":
        kern = usable.get("kernel_class", pd.Series("unknown", index=usable.index)).fillna("unknown")
        keys = pd.DataFrame({"a": _expiratory(usable), "b": (thick > max_density_slice_mm).astype(int),
                             "k": kern.map(DENSITY_RANK).fillna(DENSITY_RANK["unknown"]), "c": thick, "d": nz,
                             "id": usable["scan_id"]})
    elif rule == "thinnest_lung_kernel":
        kern = usable["kernel"].fillna("").map(lambda k: 0 if (not k or is_lung_kernel(k, lung_kernels)) else 1)
        keys = pd.DataFrame({"a": _expiratory(usable), "b": kern, "c": thick, "d": nz, "id": usable["scan_id"]})
    elif rule == "thinnest":
        keys = pd.DataFrame({"c": thick, "d": nz, "id": usable["scan_id"]})
    elif rule == "most_slices":
        keys = pd.DataFrame({"d": nz, "c": thick, "id": usable["scan_id"]})
    else:
        raise ValueError(
            f"unknown selection rule {rule!r}; use smooth_kernel, thinnest_lung_kernel, thinnest, most_slices or all"
        )
    keys["study"] = usable["study_id"]
    best = keys.sort_values([c for c in keys.columns if c != "study"], kind="stable").groupby("study").head(1)
    sel[best.index] = True
    return sel


def series_roles(df: pd.DataFrame, *, airway_series: bool = True) -> pd.Series:
    """``density`` (selected), ``airway`` (the study's sharpest other inspiratory series, if strictly sharper) or ``""``."""
    role = pd.Series("", index=df.index, dtype=object)
    selected = df["selected"].fillna(False).astype(bool)
    role[selected] = "density"
    if not airway_series or "kernel_class" not in df:
        return role
    sharp = df["kernel_class"].fillna("unknown").map(SHARPNESS_RANK).fillna(SHARPNESS_RANK["unknown"])
    cand = df[df["usable"].astype(bool) & ~selected & (_expiratory(df) == 0)]
    for study, rows in cand.groupby("study_id"):
        dens = df[selected & (df["study_id"] == study)]
        if dens.empty:
            continue
        keys = pd.DataFrame({"s": -sharp[rows.index], "c": _thickness(rows), "id": rows["scan_id"]})
        best = keys.sort_values(["s", "c", "id"], kind="stable").index[0]
        if sharp[best] > sharp[dens.index[0]]:
            role[best] = "airway"
    return role


def density_airway_pairs(manifest: pd.DataFrame) -> dict[str, str]:
    """Density scan id -> the airway scan id of its study (only studies that have one)."""
    if "series_role" not in manifest:
        return {}
    roles = manifest[["scan_id", "study_id", "series_role"]].fillna("")
    airway = roles[roles["series_role"] == "airway"].set_index("study_id")["scan_id"]
    dens = roles[roles["series_role"] == "density"]
    return {str(r.scan_id): str(airway[r.study_id]) for r in dens.itertuples() if r.study_id in airway.index}


def analysed_scans(manifest: pd.DataFrame) -> pd.Series:
    """Boolean: series preprocess must process (usable and selected, or the airway series)."""
    use = manifest["usable"].fillna(False).astype(bool)
    sel = manifest["selected"].fillna(False).astype(bool) if "selected" in manifest else use
    role = manifest["series_role"].fillna("") if "series_role" in manifest else pd.Series("", index=manifest.index)
    return use & (sel | (role == "airway"))



def density_scan_ids(qc: pd.DataFrame) -> list[str]:
    """Scan ids of a QC table without the airway series (those feed only the airway columns)."""
    if "series_role" in qc:
        qc = qc[qc["series_role"].fillna("density").astype(str) != "airway"]
    return qc["scan_id"].astype(str).tolist()
