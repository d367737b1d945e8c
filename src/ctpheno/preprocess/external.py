"""Lung masks made by other tools: onto the image's physical grid, label mapping, left/right split.

A label image from another tool (TotalSegmentator, lungmask, a radiotherapy planning system, a
hand contour) is accepted when its voxel centres are the image's voxel centres in patient space,
whatever the array order: TotalSegmentator writes the NIfTI of a DICOM series in its own axis
order and sign (RAS), which is the same physical grid. Such a mask is brought onto the image's
array order by nearest-neighbour resampling through the two geometries (exact: every image voxel
centre is a mask voxel centre). A mask on another grid (spacing, extent or a sub-voxel shift)
raises :class:`ValueError` naming the mismatch: resampling a mask between grids changes its
volume and is the user's decision.

Labels are mapped through :class:`~ctpheno.config.preprocess.ExternalMaskConfig.label_map`
(source value -> ``right`` | ``left`` | ``lung`` | ``airway`` | ``ignore``); ``lung`` voxels
(a binary mask) are split into right and left by :func:`split_lungs`. Lobe labels named in
``lobes`` are kept as a lobe map (codes 1.. in the order of ``LOBE_NAMES``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..config.preprocess import ExternalMaskConfig
from ..io.volcheck import check_volume_file
from ..io.volume import Volume, axial_view
from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .grid import block_factors, block_mean, body_interior, largest_component, upsample_nearest
from .sides import ONE_LUNG_MAX_MINOR, split_joined

LOBE_NAMES = ("right_upper", "right_middle", "right_lower", "left_upper", "left_lower")
"""Lobe codes of the lobe map: index + 1."""
GRID_TOL_VOXELS = 0.05
"""Largest offset (in voxels) between the image's and the mask's voxel centres on 'the same grid'."""
SPLIT_GRID_MM = 2.5


def read_mask(path: str | Path, *, label: str = "external mask") -> Volume:
    """Read a label image (NIfTI, NRRD, MHA, ...) with its geometry, after the checks every input
    volume gets (:func:`ctpheno.io.volcheck.validate_volume_file`: truncated data, impossible
    spacing, a detached header pointing outside its folder). Errors name ``label``, never the path
    (paths often carry patient names).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    VolumeFileError
        The file fails a check; its ``code`` is the ingest reason code.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{label}: file does not exist (segmentation.external.path_template)")
    check_volume_file(str(p), name=label)
    return Volume.from_sitk(sitk.ReadImage(str(p)))


def to_image_grid(image: Volume, mask: Volume, *, what: str = "mask") -> Volume:
    """``mask`` on ``image``'s array grid when both describe the same physical voxel centres.

    Raises
    ------
    ValueError
        The mask's voxel centres differ from the image's (names the spacing, extent and offset seen).
    """
    if image.same_geometry(mask):
        return image.with_array(mask.array)
    # continuous mask index (i, j, k) of every image axis step and of the image origin
    m_dir = mask.direction_matrix * np.asarray(mask.spacing_mm[::-1])[None, :]  # columns: physical step per index
    inv = np.linalg.inv(m_dir)
    o = inv @ (np.asarray(image.origin_mm) - np.asarray(mask.origin_mm))
    steps = inv @ (image.direction_matrix * np.asarray(image.spacing_mm[::-1])[None, :])
    perm_ok = np.allclose(np.abs(steps), np.round(np.abs(steps)), atol=GRID_TOL_VOXELS) and \
        np.allclose(np.sort(np.abs(np.round(steps)), axis=0)[::-1][0], 1.0) and \
        sorted(np.argmax(np.abs(steps), axis=0).tolist()) == [0, 1, 2] and \
        np.allclose(np.abs(np.round(steps)).sum(axis=0), 1.0)
    offset = float(np.max(np.abs(o - np.round(o))))
    if perm_ok and offset <= GRID_TOL_VOXELS:
        ijk_far = o + steps @ (np.asarray(image.shape[::-1], float) - 1.0)
        lo, hi = np.minimum(o, ijk_far), np.maximum(o, ijk_far)
        size = np.asarray(mask.shape[::-1], float)
        if np.all(lo >= -GRID_TOL_VOXELS) and np.all(hi <= size - 1 + GRID_TOL_VOXELS):
            import SimpleITK as sitk

            ref = image.with_array(np.zeros(image.shape, np.uint8)).to_sitk()
            out = sitk.Resample(mask.to_sitk(), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                mask.to_sitk().GetPixelID())
            return image.with_array(sitk.GetArrayFromImage(out))
        raise ValueError(f"{what} covers a different part of the patient than the image: image shape {image.shape}, "
                         f"{what} shape {mask.shape}; crop or pad the {what} to the image's field of view")
    raise ValueError(f"{what} is not on the image's voxel grid: spacing {mask.spacing_mm} vs {image.spacing_mm} mm, "
                     f"origin {tuple(round(v, 2) for v in mask.origin_mm)} vs "
                     f"{tuple(round(v, 2) for v in image.origin_mm)}, voxel centres offset by {offset:.2f} voxel; "
                     f"resample the {what} onto the image grid (nearest neighbour) first")


def map_labels(image: Volume, mask: Volume, config: ExternalMaskConfig | None = None,
               ) -> tuple[Volume, Volume | None]:
    """Project labels (1 right, 2 left, 3 airways) and the lobe map (None without lobes) from a mask.

    ``mask`` must already be on ``image``'s grid (:func:`to_image_grid`).
    """
    cfg = config or ExternalMaskConfig()
    src = np.asarray(mask.array)
    if not np.issubdtype(src.dtype, np.integer):
        if not np.allclose(src, np.round(src)):
            raise ValueError(f"mask values must be integer labels; got {src.dtype} with fractional values")
        src = np.round(src).astype(np.int32)
    values = set(int(v) for v in np.unique(src)) - {0}
    unknown = sorted(values - set(cfg.label_map))
    if unknown:
        raise ValueError(f"mask labels {unknown[:10]} are not in the label map {dict(cfg.label_map)}; add them to "
                         f"preprocess.segmentation.external.label_map (right | left | lung | airway | ignore)")
    out = np.zeros(src.shape, np.uint8)
    lung_any = np.zeros(src.shape, bool)
    for value, role in cfg.label_map.items():
        if value not in values or role == "ignore":
            continue
        sel = src == value
        if role == "right":
            out[sel] = LABEL_RIGHT_LUNG
        elif role == "left":
            out[sel] = LABEL_LEFT_LUNG
        elif role == "airway":
            out[sel] = LABEL_AIRWAYS
        else:
            lung_any |= sel
    if lung_any.any():
        split = split_lungs(image, lung_any)
        np.copyto(out, split, where=lung_any)
    lobes = None
    if cfg.lobes:
        lobes = np.zeros(src.shape, np.uint8)
        for value, name in cfg.lobes.items():
            lobes[src == value] = LOBE_NAMES.index(name) + 1
    return image.with_array(out), (image.with_array(lobes) if lobes is not None else None)


def split_lungs(image: Volume, lung: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """Right (1) / left (2) of a binary lung mask, per connected lung, sides from the direction matrix.

    Each 3-D component (on a ~2.5 mm grid) that lies on one side of the body midline is one lung;
    a component over both sides is split by the classic method's erosion + watershed when it holds
    two lungs, and kept whole as one lung crossing the midline otherwise
    (:data:`~ctpheno.preprocess.sides.ONE_LUNG_MAX_MINOR`).
    """
    from scipy import ndimage as ndi

    from .grid import STRUCT_6

    perm, (lat_ax, lat_sign), _ = axial_view(image)
    hu = np.transpose(np.asarray(image.array), perm)
    m = np.transpose(lung, perm)
    spacing = tuple(image.spacing_mm[a] for a in perm)
    f = block_factors(spacing, SPLIT_GRID_MM)
    sp_c = tuple(s * k for s, k in zip(spacing, f))
    hu_c = block_mean(hu, f)
    m_c = block_mean(m.view(np.uint8), f) >= 0.5
    coords = np.arange(hu_c.shape[lat_ax], dtype=np.float64) * sp_c[lat_ax] * lat_sign
    shape = [1, 1, 1]
    shape[lat_ax] = -1
    lateral = np.broadcast_to(coords.reshape(shape), hu_c.shape)
    body = body_interior(largest_component(hu_c >= -500.0)) | m_c
    side = lateral - float(np.median(lateral[body]))
    lab_c = np.zeros(hu_c.shape, np.uint8)
    comp, n = ndi.label(m_c, structure=STRUCT_6)
    for i in range(1, n + 1):
        c = comp == i
        size = int(c.sum())
        minor = min(np.count_nonzero(c & (side < 0)), np.count_nonzero(c & (side > 0))) / size
        split = None
        if minor >= 0.2 and size > 50:
            split = split_joined(c, hu_c, side, sp_c, min_core_ratio=0.12 if minor < ONE_LUNG_MAX_MINOR else 0.0)
        if split is not None:
            lab_c[split[0]] = LABEL_RIGHT_LUNG
            lab_c[split[1]] = LABEL_LEFT_LUNG
        else:
            lab_c[c] = LABEL_RIGHT_LUNG if float(side[c].mean()) < 0 else LABEL_LEFT_LUNG
    # image grid: the coarse label of each voxel's block, else the nearest coarse lung label
    if (lab_c == 0).any() and lab_c.any():
        _, idx = ndi.distance_transform_edt(lab_c == 0, return_indices=True)
        lab_c = lab_c[tuple(idx)]
    full = upsample_nearest(lab_c, f, m.shape)
    out = np.where(m, full, 0).astype(np.uint8)
    return np.ascontiguousarray(np.transpose(out, np.argsort(perm)))
