"""Per-scan acquisition descriptors and the adjusted (calibrated, harmonised) lung histograms.

:func:`measure_descriptors` measures tracheal air, noise, noise texture and aortic blood on one
scan (NumPy arrays, or dask arrays of which only crops and a few slices are read), resolves the
kernel class and decides the calibration map and the harmonising filter
(:mod:`ctpheno.features.calibration`, :mod:`ctpheno.features.harmonise`).
:func:`adjusted_group_histograms` gives the lung histograms of the adjusted image

.. math:: x' = \\operatorname{rint}\\big(s \\cdot (g_{\\sigma_f} * x) + o\\big)

(:math:`g_{\\sigma_f}` the in-plane harmonising Gaussian, :math:`s, o` the calibration map), from
which the ``*_adj`` columns are computed exactly as the raw ones. Without filtering the
histogram is remapped bin by bin (exact, no image pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config.features import QCTConfig
from ..ingest.kernels import class_from_noise_texture
from ..vocab import HU_AIR, LABEL_AIRWAYS
from .blood import measure_blood
from .calibration import calibration_map, measure_air, trachea_lumen
from .harmonise import filter_halo_px, filter_in_plane, harmonising_sigma_mm, scan_noise_texture
from .kernel_fit import deboost_weight, fit_kernel, target_noise_hu
from .histogram import HU_OFFSET, N_BINS, group_histograms

UPPER_ZONES = (1, 4)
LOWER_ZONES = (3, 6)
INT16_RANGE = (-32768, 32767)


@dataclass(frozen=True)
class Descriptors:
    """Acquisition descriptors of one scan and the adjustment decided from them."""

    air_hu: float = math.nan
    noise_hu: float = math.nan
    blood_hu: float = math.nan
    air_source: str = "none"
    noise_fav_lpmm: float = math.nan
    kernel_class: str = "unknown"
    calibration_scale: float = 1.0
    calibration_offset_hu: float = 0.0
    harmonise_sigma_mm: float = 0.0
    harmonise_deboost: float = 0.0
    harmonise_target_hu: float = math.nan
    floor_hu: float = math.nan
    """Storage floor seen in the tracheal air (NaN: none); floor voxels are imputed before filtering."""
    flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filters(self) -> bool:
        """Whether the adjusted image is filtered (else only calibrated)."""
        return self.harmonise_sigma_mm > 0 or self.harmonise_deboost > 0

    def halo(self, spacing_mm: tuple[float, float, float]) -> tuple[int, int, int]:
        """Reach of the harmonising filter in voxels."""
        return filter_halo_px(self.harmonise_sigma_mm, spacing_mm, self.harmonise_deboost)

    @property
    def floor_fill_hu(self) -> float:
        """Value given to floor voxels before filtering: the mean of a half-normal of the noise below the
        floor, ``floor - noise * sqrt(2 / pi)`` (the censored tail, not the floor, is what was imaged)."""
        if not (math.isfinite(self.floor_hu) and math.isfinite(self.noise_hu)):
            return math.nan
        return self.floor_hu - self.noise_hu * math.sqrt(2.0 / math.pi)

    def columns(self) -> dict[str, Any]:
        """The scan-level columns of the QCT table (schema QCT)."""
        return {
            "air_hu": self.air_hu,
            "noise_hu": self.noise_hu,
            "blood_hu": self.blood_hu,
            "air_source": self.air_source,
            "noise_fav_lpmm": self.noise_fav_lpmm,
            "kernel_class": self.kernel_class,
            "calibration_scale": self.calibration_scale,
            "calibration_offset_hu": self.calibration_offset_hu,
            "harmonise_sigma_mm": self.harmonise_sigma_mm,
            "harmonise_deboost": self.harmonise_deboost,
            "harmonise_target_hu": self.harmonise_target_hu,
        }


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


PROFILE_STRIDE = 2
"""In-plane subsampling of the mask profiles (bounding boxes are widened by the stride; the slice
counts are a 1/stride^2 sample, used only as fractions)."""


def _profiles(labels: Any, zones: Any) -> dict[str, npt.NDArray[Any]]:
    """Per-axis projections of the lung and airway masks and the per-slice lung/zone counts.

    Computed on every :data:`PROFILE_STRIDE`-th row and column (the same in memory and blockwise).
    """
    shape = tuple(int(n) for n in labels.shape)
    labels = labels[:, ::PROFILE_STRIDE, ::PROFILE_STRIDE]
    zones = zones[:, ::PROFILE_STRIDE, ::PROFILE_STRIDE]
    if not _is_dask(labels):
        return {**_profiles_numpy(np.asarray(labels), np.asarray(zones)), "shape": np.asarray(shape)}
    import dask

    lung = (labels == 1) | (labels == 2)
    airway = labels == LABEL_AIRWAYS
    upper = (zones == UPPER_ZONES[0]) | (zones == UPPER_ZONES[1])
    lower = (zones == LOWER_ZONES[0]) | (zones == LOWER_ZONES[1])
    parts = {
        "lung_z": lung.sum(axis=(1, 2)),
        "lung_y": lung.any(axis=(0, 2)),
        "lung_x": lung.any(axis=(0, 1)),
        "air_z": airway.any(axis=(1, 2)),
        "air_y": airway.any(axis=(0, 2)),
        "air_x": airway.any(axis=(0, 1)),
        "upper_z": (upper & lung).sum(axis=(1, 2)),
        "lower_z": (lower & lung).sum(axis=(1, 2)),
    }
    names = list(parts)
    out = dict(zip(names, (np.asarray(v) for v in dask.compute(*[parts[n] for n in names]))))
    return {**out, "shape": np.asarray(shape)}


N_CODES = 32
"""Per-slice codes ``8 * label + zone`` (labels 0..3, zones 0..6)."""


def _profiles_numpy(labels: npt.NDArray[Any], zones: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    """:func:`_profiles` one slice at a time (a few 2-D passes instead of full-volume temporaries)."""
    nz, ny, nx = labels.shape
    counts = np.zeros((nz, N_CODES), np.int64)
    lung_yx = np.zeros((ny, nx), bool)
    air_yx = np.zeros((ny, nx), bool)
    for k in range(nz):
        lab = labels[k]
        if not lab.any():
            continue
        code = lab.astype(np.uint8) * np.uint8(8) + zones[k].astype(np.uint8)
        counts[k] = np.bincount(code.ravel(), minlength=N_CODES)[:N_CODES]
        lung_yx |= (lab == 1) | (lab == 2)
        air_yx |= lab == LABEL_AIRWAYS
    lung_codes = counts[:, 8:24]
    return {
        "lung_z": lung_codes.sum(axis=1),
        "lung_y": lung_yx.any(axis=1),
        "lung_x": lung_yx.any(axis=0),
        "air_z": counts[:, 24:32].sum(axis=1) > 0,
        "air_y": air_yx.any(axis=1),
        "air_x": air_yx.any(axis=0),
        "upper_z": sum(lung_codes[:, 8 * i + z] for i in (0, 1) for z in UPPER_ZONES),
        "lower_z": sum(lung_codes[:, 8 * i + z] for i in (0, 1) for z in LOWER_ZONES),
    }


def superior_is_last(prof: dict[str, npt.NDArray[Any]]) -> bool | None:
    """Whether the last slice is the most superior, from where the upper and lower zones lie."""
    up, low = prof["upper_z"], prof["lower_z"]
    if up.sum() == 0 or low.sum() == 0:
        return None
    z = np.arange(up.size)
    return bool((z * up).sum() / up.sum() > (z * low).sum() / low.sum())


def _box(prof: dict[str, npt.NDArray[Any]], name: str, *, margin: int = 1) -> tuple[slice, ...] | None:
    """Bounding box (full-resolution slices) of mask ``name`` (``lung`` or ``air``) from its profiles."""
    shape = [int(n) for n in prof["shape"]]
    out = []
    for axis, stride in (("z", 1), ("y", PROFILE_STRIDE), ("x", PROFILE_STRIDE)):
        nz = np.flatnonzero(prof[f"{name}_{axis}"])
        if nz.size == 0:
            return None
        n = shape[len(out)]
        lo, hi = stride * int(nz[0]) - (stride - 1), stride * int(nz[-1]) + stride
        out.append(slice(max(lo - margin, 0), min(hi + margin, n)))
    return tuple(out)


def _air(image: Any, labels: Any, prof: dict[str, Any], sp: tuple[float, float, float], cfg: QCTConfig,
         superior_last: bool | None):
    """Tracheal air from the label-3 crop, or from the detected trachea on the upper slab."""
    lung_z = np.flatnonzero(prof["lung_z"])
    if prof["air_z"].any():
        box = _box(prof, "air")
        hu_c, lab_c = np.asarray(image[box]), np.asarray(labels[box])
    elif superior_last is not None and lung_z.size:  # no airway label: detect the trachea (whole arrays)
        hu_c, lab_c = np.asarray(image), np.asarray(labels)
    else:
        return measure_air(np.zeros((1, 1, 1), np.int16), np.zeros((1, 1, 1), bool), sp, source="none")
    lumen, source = trachea_lumen(hu_c, lab_c, sp, superior_last=superior_last)
    return measure_air(hu_c, lumen, sp, erosion_mm=cfg.calibration.trachea_erosion_mm, source=source)


def measure_descriptors(
    image: Any,
    labels: Any,
    zones: Any,
    spacing_mm: tuple[float, float, float],
    *,
    config: QCTConfig = QCTConfig(),
    kernel_class: str = "unknown",
    superior_last: bool | None = None,
) -> tuple[Descriptors, dict[str, npt.NDArray[Any]]]:
    """Descriptors of one scan and the mask profiles computed on the way (reused for coverage).

    ``kernel_class`` comes from the header (:func:`ctpheno.ingest.kernels.classify_kernel`);
    ``unknown`` is replaced by the class of the measured noise texture. ``superior_last``
    (whether the last slice is the most superior) defaults to what the zones say.
    """
    prof = _profiles(labels, zones)
    if superior_last is None:
        superior_last = superior_is_last(prof)
    air = _air(image, labels, prof, spacing_mm, config, superior_last)
    lung_z = np.flatnonzero(prof["lung_z"])
    texture = scan_noise_texture(image, lung_z, spacing_mm)
    fav = texture.fav_lpmm()
    flags: list[str] = []
    if kernel_class == "unknown":
        kernel_class = class_from_noise_texture(fav, max(spacing_mm[1], spacing_mm[2]))
    blood = measure_blood(image, labels, prof, spacing_mm, superior_last=superior_last)
    scale, offset = 1.0, 0.0
    if not math.isfinite(air.air_hu):
        flags.append("air_unmeasured")
    else:
        if abs(air.air_hu - HU_AIR) > config.calibration.max_offset_hu:
            flags.append("air_offset")
        if config.calibration.enabled:
            scale, offset = calibration_map(air.air_hu, blood, method=config.calibration.method,
                                            blood_reference_hu=config.calibration.blood_reference_hu)
    sigma = deboost = 0.0
    hcfg = config.harmonisation
    target = hcfg.reference_noise_hu
    if hcfg.enabled and math.isfinite(air.noise_hu):
        # a kernel the header names smooth is not matched further: only the absolute reference applies
        matching = hcfg.kernel_matching and kernel_class != "smooth"
        fit = fit_kernel(texture, reference_core_mm=hcfg.reference_core_mm) if matching else None
        target = target_noise_hu(air.noise_hu * scale, hcfg.reference_noise_hu, fit)
        if air.noise_hu * scale > target:
            deboost = deboost_weight(fit)
        sigma = harmonising_sigma_mm(air.noise_hu * scale, target, texture, max_sigma_mm=hcfg.max_sigma_mm,
                                     deboost=deboost)
        if math.isinf(sigma):
            flags.append("noise_high")
            sigma = float(hcfg.max_sigma_mm)
    desc = Descriptors(air_hu=air.air_hu, noise_hu=air.noise_hu, blood_hu=blood, air_source=air.source,
                       noise_fav_lpmm=fav, kernel_class=kernel_class, calibration_scale=scale,
                       calibration_offset_hu=offset, harmonise_sigma_mm=sigma, harmonise_deboost=deboost,
                       harmonise_target_hu=target if hcfg.enabled else math.nan, floor_hu=air.floor_hu,
                       flags=tuple(flags))
    return desc, prof


def remap_histograms(groups: npt.NDArray[np.int64], scale: float, offset: float) -> npt.NDArray[np.int64]:
    """Histograms of ``rint(scale * x + offset)`` from those of ``x`` (last axis: integer-HU bins)."""
    if scale == 1.0 and offset == 0.0:
        return groups
    hu = np.arange(N_BINS, dtype=np.float64) - HU_OFFSET
    new = np.clip(np.rint(scale * hu + offset), *INT16_RANGE).astype(np.int64) + HU_OFFSET
    flat = groups.reshape(-1, N_BINS)
    out = np.zeros_like(flat)
    for i, h in enumerate(flat):
        nz = np.flatnonzero(h)
        out[i] = np.bincount(new[nz], weights=h[nz], minlength=N_BINS).astype(np.int64)
    return out.reshape(groups.shape)


def adjust_block(block: npt.NDArray[np.integer], sigma_mm: float, spacing_mm: tuple[float, float, float],
                 scale: float, offset: float, floor_hu: float = math.nan,
                 floor_fill_hu: float = math.nan, deboost: float = 0.0) -> npt.NDArray[np.int16]:
    """``rint(scale * filter_in_plane(block) + offset)`` as int16 (one block or a whole crop).

    Voxels at the storage floor ``floor_hu`` are set to ``floor_fill_hu`` before filtering (when
    both are finite), so that averaging does not lift clipped air and emphysema.
    """
    if math.isfinite(floor_hu) and math.isfinite(floor_fill_hu) and (sigma_mm > 0 or deboost > 0):
        block = np.where(block <= floor_hu, np.float32(floor_fill_hu), block.astype(np.float32))
    f = filter_in_plane(block, sigma_mm, spacing_mm, deboost)
    f *= np.float32(scale)
    f += np.float32(offset)
    np.rint(f, out=f)
    np.clip(f, *INT16_RANGE, out=f)
    return f.astype(np.int16)


def lung_box(prof: dict[str, npt.NDArray[Any]], shape: tuple[int, ...],
             halo: tuple[int, int, int]) -> tuple[slice, ...] | None:
    """The lungs' bounding box grown by ``halo`` voxels (clipped to the volume); None without lung."""
    box = _box(prof, "lung", margin=2)  # the profiles are subsampled in-plane: a safety margin
    if box is None:
        return None
    return tuple(slice(max(b.start - h, 0), min(b.stop + h, n)) for b, h, n in zip(box, halo, shape))


SLAB_SLICES = 16
"""Slices adjusted at a time: the filter is in-plane, so slabs need no halo and stay in cache."""


def adjusted_crop_histograms(hu: npt.NDArray[np.integer], labels: npt.NDArray[Any], zones: npt.NDArray[Any],
                              desc: Descriptors, spacing_mm: tuple[float, float, float]) -> npt.NDArray[np.int64]:
    """Group histograms of the adjusted image of a crop that holds every lung voxel plus the filter's
    in-plane halo, slab by slab (:data:`SLAB_SLICES`), each slab cut to its own lungs plus the halo
    (identical values: a lung voxel's neighbourhood never reaches past either box's edge unless that
    edge is the crop's own)."""
    halo = desc.halo(spacing_mm)
    total = None
    for k in range(0, hu.shape[0], SLAB_SLICES):
        lab = np.asarray(labels[k : k + SLAB_SLICES])
        lung = (lab == 1) | (lab == 2)
        if not lung.any():
            continue
        # the slab's own lung box plus the halo (apical and basal slabs hold far less than the whole box)
        rows, cols = np.flatnonzero(lung.any(axis=(0, 2))), np.flatnonzero(lung.any(axis=(0, 1)))
        box = (slice(k, k + SLAB_SLICES), slice(max(rows[0] - halo[1], 0), rows[-1] + halo[1] + 1),
               slice(max(cols[0] - halo[2], 0), cols[-1] + halo[2] + 1))
        adj = adjust_block(np.asarray(hu[box]), desc.harmonise_sigma_mm, spacing_mm, desc.calibration_scale,
                           desc.calibration_offset_hu, desc.floor_hu, desc.floor_fill_hu, desc.harmonise_deboost)
        part = group_histograms(adj, lab[:, box[1], box[2]], np.asarray(zones[box]))
        total = part if total is None else total + part
    return total if total is not None else np.zeros((2, 7, N_BINS), np.int64)


def adjusted_group_histograms(
    hu: npt.NDArray[np.int16], labels: npt.NDArray[Any], zones: npt.NDArray[Any],
    groups: npt.NDArray[np.int64], desc: Descriptors, spacing_mm: tuple[float, float, float],
    prof: dict[str, npt.NDArray[Any]],
) -> npt.NDArray[np.int64]:
    """Group histograms of the adjusted image: bins remapped without filtering, else the filtered crop
    of the lungs' bounding box plus the filter's halo (:func:`lung_box`)."""
    if not desc.filters:
        return remap_histograms(groups, desc.calibration_scale, desc.calibration_offset_hu)
    box = lung_box(prof, hu.shape, desc.halo(spacing_mm))
    if box is None:
        return np.zeros_like(groups)
    return adjusted_crop_histograms(hu[box], labels[box], zones[box], desc, spacing_mm)
