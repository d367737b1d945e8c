"""Schemas of every Parquet table ctpheno writes — the one place they live.

Each :class:`TableSchema` lists required columns with dtype, unit and meaning.
Wide tables (radiomics, embeddings) also allow extra columns matching a
prefix. Stages call :func:`TableSchema.validate` before writing, so a table on
disk always matches what is documented here (and in ``docs/methodology.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Column:
    dtype: str
    """pandas dtype family: 'string', 'int', 'float', 'bool', 'datetime'."""
    doc: str
    unit: str = ""
    nullable: bool = True


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: dict[str, Column]
    key: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()
    """Extra columns are allowed only if they start with one of these (empty: any extra allowed if None)."""
    allow_any_extra: bool = False
    doc: str = ""

    def validate(self, df: pd.DataFrame, *, where: str = "") -> pd.DataFrame:
        """Check required columns, dtypes and key uniqueness; return ``df`` unchanged."""
        ctx = f" in {where}" if where else ""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(f"table {self.name!r}{ctx} is missing columns {missing}")
        if not self.allow_any_extra:
            extra = [c for c in df.columns if c not in self.columns
                     and not any(str(c).startswith(p) for p in self.extra_prefixes)]
            if extra:
                raise ValueError(f"table {self.name!r}{ctx} has undocumented columns {extra}; "
                                 f"add them to ctpheno.io.schemas.{self.name.upper()}")
        for name, col in self.columns.items():
            s = df[name]
            if not col.nullable and s.isna().any():
                raise ValueError(f"column {name!r} of table {self.name!r}{ctx} has missing values")
            if s.isna().all():
                continue
            ok = {
                "string": lambda x: pd.api.types.is_string_dtype(x) or pd.api.types.is_object_dtype(x),
                "int": pd.api.types.is_integer_dtype,
                "float": lambda x: pd.api.types.is_float_dtype(x) or pd.api.types.is_integer_dtype(x),
                "bool": pd.api.types.is_bool_dtype,
                "datetime": pd.api.types.is_datetime64_any_dtype,
                "any": lambda x: True,
            }[col.dtype](s)
            if not ok:
                raise ValueError(f"column {name!r} of table {self.name!r}{ctx} should be {col.dtype}, "
                                 f"got {s.dtype}")
        if self.key and len(df) and df.duplicated(list(self.key)).any():
            dup = df[df.duplicated(list(self.key), keep=False)][list(self.key)].head(5)
            raise ValueError(f"table {self.name!r}{ctx} has duplicate keys {self.key}: "
                             f"{dup.to_dict('records')}")
        return df

    def empty(self) -> pd.DataFrame:
        conv = {"string": "string", "int": "Int64", "float": "float64", "bool": "boolean",
                "datetime": "datetime64[ns]", "any": "object"}
        return pd.DataFrame({n: pd.Series(dtype=conv[c.dtype]) for n, c in self.columns.items()})

    def markdown(self) -> str:
        rows = [f"### `{self.name}`\n", self.doc + "\n" if self.doc else "",
                "| column | dtype | unit | meaning |", "|---|---|---|---|"]
        rows += [f"| `{n}` | {c.dtype} | {c.unit} | {c.doc} |" for n, c in self.columns.items()]
        if self.extra_prefixes:
            rows.append(f"| `{'`, `'.join(p + '*' for p in self.extra_prefixes)}` | float | | feature columns |")
        return "\n".join(rows) + "\n"


S, I, F, B = "string", "int", "float", "bool"

FAILURES = TableSchema(
    "failures",
    {
        "scan_id": Column(S, "pseudonymous scan id (or the input path's hash when no id exists yet)", nullable=False),
        "stage": Column(S, "pipeline stage that failed", nullable=False),
        "error_type": Column(S, "exception class name", nullable=False),
        "message": Column(S, "error message (names the file/problem; PHI-free)"),
        "source": Column(S, "input file or folder the failure concerns (relative, PHI-free)"),
        "attempts": Column(I, "number of attempts made"),
        "timestamp": Column(S, "ISO-8601 UTC time of the failure"),
    },
    key=("scan_id", "stage"),
    doc="One row per (scan, stage) that failed in the latest run of that stage.",
)

MANIFEST = TableSchema(
    "manifest",
    {
        "scan_id": Column(S, "pseudonymous series id, file-name safe: s-<12 hex> (HMAC-SHA256 of the SeriesInstanceUID, "
                                 "or of the root-relative file path for NIfTI/NRRD/MHA)", nullable=False),
        "subject_id": Column(S, "pseudonymous subject id p-<12 hex> (HMAC of PatientID; of the file name without "
                                    "extension for NIfTI/NRRD/MHA); equals clinical.parquet's subject_id", nullable=False),
        "study_id": Column(S, "pseudonymous study id"),
        "series_id": Column(S, "pseudonymous series id within the study"),
        "format": Column(S, "dicom | nifti | nrrd | mha"),
        "modality": Column(S, "DICOM Modality (CT, MR, ...)"),
        "image_type": Column(S, "DICOM ImageType joined with '\\'"),
        "body_part": Column(S, "BodyPartExamined"),
        "kernel": Column(S, "ConvolutionKernel"),
        "manufacturer": Column(S, "Manufacturer"),
        "slice_thickness_mm": Column(F, "SliceThickness", "mm"),
        "spacing_z_mm": Column(F, "slice spacing: median gap between ImagePositionPatient along the slice normal", "mm"),
        "spacing_y_mm": Column(F, "row spacing", "mm"),
        "spacing_x_mm": Column(F, "column spacing", "mm"),
        "size_z": Column(I, "number of slices (distinct positions)"),
        "size_y": Column(I, "rows"),
        "size_x": Column(I, "columns"),
        "n_files": Column(I, "number of files in the series"),
        "orientation": Column(S, "axial | coronal | sagittal | oblique"),
        "contrast": Column(B, "ContrastBolusAgent present"),
        "acquisition_offset_days": Column(F, "days from the subject's first study (dates are never stored)", "days"),
        "source": Column(S, "PHI-free origin: input<i>/d-<folder token> or input<i>/f-<file token><ext>; raw paths are "
                            "only in ingest/sources.parquet"),
        "usable": Column(B, "passes every validation rule", nullable=False),
        "selected": Column(B, "the series chosen for analysis in its study (its density series; model stages key on it)"),
        "kernel_class": Column(S, "smooth | medium | sharp | unknown (vendor + ConvolutionKernel table, "
                                  "ctpheno.ingest.kernels; unknown kernels in multi-series studies by measured noise texture)"),
        "kernel_class_source": Column(S, "header | noise | empty (unknown)"),
        "series_role": Column(S, "density (the selected series) | airway (the study's sharpest other reconstruction, "
                                 "processed for the airway measures) | empty"),
        "reasons": Column(S, "semicolon-separated reason codes, empty when none (documented in ctpheno.ingest.reasons "
                             "and docs/ingest.md)"),
    },
    key=("scan_id",),
    doc="One row per discovered series or volume file.",
    allow_any_extra=True,
)

SOURCES = TableSchema(
    "sources",
    {
        "scan_id": Column(S, "scan id (as in the manifest)", nullable=False),
        "format": Column(S, "dicom | nifti | nrrd | mha", nullable=False),
        "paths": Column("any", "list of absolute file paths or URLs making up the scan (DICOM: one per slice)"),
    },
    key=("scan_id",),
    doc="Ingest's private index of where each scan's files are; written with 0600 permissions because "
        "archive paths often contain patient identifiers. Readers take `paths` and `format`.",
)

QC = TableSchema(
    "qc",
    {
        "scan_id": Column(S, "scan id", nullable=False),
        "lung_volume_ml": Column(F, "total lung volume (labels 1+2)", "mL"),
        "right_volume_ml": Column(F, "right lung volume", "mL"),
        "left_volume_ml": Column(F, "left lung volume", "mL"),
        "left_right_ratio": Column(F, "left / right lung volume"),
        "frac_above_minus500": Column(F, "fraction of lung-mask voxels above -500 HU"),
        "both_lungs_found": Column(B, "both lungs present"),
        "covers_apex": Column(B, "lung mask does not touch the top slice"),
        "covers_base": Column(B, "lung mask does not touch the bottom slice"),
        "lung_body_ratio": Column(F, "lung volume / body volume in the slices holding lung"),
        "envelope_gap_ml": Column(F, "costal concavity a 20 mm rolling ball fills beyond the mask", "mL"),
        "airway_lungs_connected": Column(I, "lungs within 8 mm of the airway label (0-2)"),
        "pleural_air_ml": Column(F, "air along the chest wall inside the mask, in sheet-like components", "mL"),
        "flags": Column(S, "semicolon-separated QC flags (empty = plausible; severities in "
                           "preprocess.qc.QC_FLAG_SEVERITY)"),
        "series_role": Column(S, "density | airway (the manifest's series_role; airway series feed only the airway "
                                 "columns of their study's density scan)"),
    },
    key=("scan_id",),
    allow_any_extra=True,
)

QCT = TableSchema(
    "qct",
    {
        "scan_id": Column(S, "scan id", nullable=False),
        "region": Column(S, "whole | right | left | upper | middle | lower (zones of both lungs)", nullable=False),
        "lung_volume_ml": Column(F, "region volume (0 when the region has no lung voxel; every density "
                                    "metric of that row is then NaN; zone rows are NaN when the lung is not "
                                    "imaged apex to base, flags apex_cut / base_cut)", "mL"),
        "mld_hu": Column(F, "mean lung density", "HU"),
        "laa950_pct": Column(F, "% voxels <= -950 HU", "%"),
        "laa910_pct": Column(F, "% voxels <= -910 HU", "%"),
        "laa856_pct": Column(F, "% voxels <= -856 HU (expiratory threshold)", "%"),
        "perc15_hu": Column(F, "15th percentile of the HU histogram", "HU"),
        "perc10_hu": Column(F, "10th percentile of the HU histogram", "HU"),
        "n_voxels": Column(I, "number of lung voxels in the region (labels 1+2, airways excluded)"),
        "hu_sd": Column(F, "standard deviation of lung HU (population)", "HU"),
        "hu_skewness": Column(F, "skewness of lung HU (m3 / m2^1.5)"),
        "hu_kurtosis": Column(F, "excess kurtosis of lung HU (m4 / m2^2 - 3)"),
        "laa950_upper_lower_ratio": Column(F, "LAA-950 of the upper over the lower zone (whole: both lungs; "
                                              "right/left: that lung; NaN on zone rows and when both are 0)"),
        "lac_count": Column(I, "number of 6-connected clusters of lung voxels <= -950 HU"),
        "lac_mean_ml": Column(F, "mean low-attenuation cluster size", "mL"),
        "lac_median_ml": Column(F, "median low-attenuation cluster size", "mL"),
        "lac_max_ml": Column(F, "largest low-attenuation cluster", "mL"),
        "lac_frac_large_pct": Column(F, "% of low-attenuation volume in clusters > 1 mL", "%"),
        "lac_d_950": Column(F, "power-law exponent D of the cumulative cluster-size distribution (Mishima 1999), "
                               "maximum-likelihood fit over features.qct.lac_fit_range_ml; NaN when fewer than 10 "
                               "clusters are in range"),
        "lac_d_950_se": Column(F, "standard error of lac_d_950 (observed Fisher information of the likelihood)"),
        "lac_fit_ks": Column(F, "Kolmogorov-Smirnov distance between the fitted power law and the cluster sizes in "
                                "the fitting range (fit quality: < 0.1 good)"),
        "lac_fit_n": Column(I, "clusters inside the fitting range used for lac_d_950 (its lower end raised to "
                               "features.qct.lac_min_voxels voxels)"),
        "pooled_airway_wall_thickness_mm": Column(F, "FWHM of the wall peak of one radial HU profile pooled over "
                                                     "the whole airway lumen (label 3 continued into the lung through "
                                                     "the bronchi; not a per-branch wall thickness; whole rows, NaN "
                                                     "elsewhere and without airway lumen)", "mm"),
        "pooled_airway_wa_pct": Column(F, "wall area percent of a tube of the pooled mean lumen radius and the pooled "
                                          "wall thickness (not COPDGene's per-branch WA%; whole rows)", "%"),
        "pooled_airway_lumen_radius_mm": Column(F, "mean lumen radius 2V/S of the pooled airway lumen (label 3 and its "
                                                   "intrapulmonary continuation; whole rows)", "mm"),
        "pooled_airway_wall_peak_hu": Column(F, "peak of the pooled radial HU profile (lung voxels) outside the airway "
                                                "lumen (whole rows)", "HU"),
        "airway_wall_hu": Column(F, "upper-quartile HU of the lung voxels within 3 mm outside the airway "
                                    "lumen (label 3 continued into the lung: the bronchial walls and their "
                                    "partial volume; whole rows)", "HU"),
        "peribronchial_hu": Column(F, "mean HU of the lung voxels within 5 mm outside the airway lumen "
                                      "(whole rows)", "HU"),
        "pi10_mm": Column(F, "Pi10: sqrt(wall area) of a 10 mm internal-perimeter airway, regression over the "
                             "measured branches of generation >= 2 (Nakano 2005; features/airway_branches.parquet; "
                             "whole rows; NaN with a flag in airway_tree_flags)", "mm"),
        "wa_pct_seg": Column(F, "median wall area % of the measured branches of generation 3-5 (segmental and "
                                "subsegmental; whole rows)", "%"),
        "wall_thickness_seg_mm": Column(F, "median wall thickness of the measured branches of generation 3-5 "
                                           "(whole rows)", "mm"),
        "lumen_area_seg_mm2": Column(F, "median lumen area of the measured branches of generation 3-5 (whole rows)",
                                     "mm^2"),
        "airway_count": Column(F, "branches of the segmented airway tree (total airway count; whole rows)"),
        "airway_max_generation": Column(F, "deepest generation of the segmented tree (trachea 0; whole rows)"),
        "airway_tree_flags": Column(S, "semicolon-separated reasons the airway endpoints are missing or doubtful "
                                       "(thick_slices, no_airway_seed, few_branches, airway_leak, airways_not_run; "
                                       "empty when fine; whole rows)"),
        "laa950_adj_pct": Column(F, "% voxels <= -950 HU of the adjusted image (air-calibrated, noise-harmonised; "
                                    "features.qct.calibration / harmonisation)", "%"),
        "laa910_adj_pct": Column(F, "% voxels <= -910 HU of the adjusted image", "%"),
        "laa856_adj_pct": Column(F, "% voxels <= -856 HU of the adjusted image", "%"),
        "perc15_adj_hu": Column(F, "15th percentile of the adjusted image's lung histogram", "HU"),
        "perc10_adj_hu": Column(F, "10th percentile of the adjusted image's lung histogram", "HU"),
        "mld_adj_hu": Column(F, "mean lung density of the adjusted image", "HU"),
        "perc15_voladj_hu": Column(F, "perc15_adj_hu adjusted to features.qct.volume_adjustment.reference_volume_ml by "
                                      "the sponge model: (P15 + 1000) * (V / V_ref)^k - 1000 with V the whole-lung "
                                      "volume (Shaker 2004; Stolk 2009)", "HU"),
        "air_hu": Column(F, "tracheal air: median HU of the tracheal lumen away from its wall (censored normal "
                            "quantile fit; scan-level, repeated on every row)", "HU"),
        "noise_hu": Column(F, "image noise: SD of the tracheal air (same fit; scan-level)", "HU"),
        "blood_hu": Column(F, "median HU of unenhanced blood in the descending aorta; NaN when not found "
                              "consistently or enhanced (scan-level)", "HU"),
        "air_source": Column(S, "where the tracheal lumen came from: label (label 3), detected, none"),
        "noise_fav_lpmm": Column(F, "mean frequency of the noise power spectrum (noise texture; Solomon 2012), "
                                    "from adjacent-slice differences in soft tissue", "1/mm"),
        "kernel_class": Column(S, "smooth | medium | sharp | unknown: from vendor + ConvolutionKernel "
                                  "(ctpheno.ingest.kernels), else from the measured noise texture"),
        "calibration_scale": Column(F, "slope s of the calibration x' = s x + o applied for the *_adj columns"),
        "calibration_offset_hu": Column(F, "intercept o of that calibration", "HU"),
        "harmonise_sigma_mm": Column(F, "in-plane Gaussian SD applied to reach features.qct.harmonisation."
                                        "reference_noise_hu (0: none)", "mm"),
        "harmonise_deboost": Column(F, "weight g of the inverse unsharp mask applied before the Gaussian (0: none; "
                                       "beta/(1+beta) of the fitted kernel boost)"),
        "harmonise_target_hu": Column(F, "noise SD the adjusted density is measured at: the reference, or the "
                                         "noise of the reference kernel at this dose (kernel matching)", "HU"),
        "qct_flags": Column(S, "semicolon-separated flags raised by the QCT stage (severities in "
                               "ctpheno.preprocess.qc.QC_FLAG_SEVERITY; scan-level)"),
        "airway_scan_id": Column(S, "scan whose volume fed the airway columns (the study's sharpest "
                                    "reconstruction when ingest kept one, else this scan)"),
    },
    key=("scan_id", "region"),
    allow_any_extra=True,
    doc="QCT metrics per scan and region (COPDGene/CIP definitions; see ctpheno.features.qct and "
        "docs/methods_features.md).",
)

AIRWAYS = TableSchema(
    "airways",
    {
        "scan_id": Column(S, "scan id", nullable=False),
        "pi10_mm": Column(F, "Pi10 (see the QCT table)", "mm"),
        "wa_pct_seg": Column(F, "median WA % of the measured generation 3-5 branches", "%"),
        "wall_thickness_seg_mm": Column(F, "median wall thickness of the measured generation 3-5 branches", "mm"),
        "lumen_area_seg_mm2": Column(F, "median lumen area of the measured generation 3-5 branches", "mm^2"),
        "airway_count": Column(F, "branches of the segmented tree"),
        "airway_max_generation": Column(F, "deepest generation (trachea 0)"),
        "airway_tree_flags": Column(S, "semicolon-separated flag codes (ctpheno.features.airways.FLAGS)"),
        "n_branches_measured": Column(F, "branches with enough valid cross-sections"),
        "slice_thickness_mm": Column(F, "through-plane sampling used: max(slice thickness, slice spacing)", "mm"),
        "airway_threshold_hu": Column(F, "global growing threshold chosen by the explosion test", "HU"),
        "airway_lumen_volume_ml": Column(F, "segmented lumen volume (trachea included)", "mL"),
        "airway_leak_fraction": Column(F, "volume erased by the per-branch leak control over the final lumen volume"),
        "airway_n_leaks": Column(F, "leaks detected and erased"),
        "max_generation_right": Column(F, "deepest generation reached in the right lung"),
        "max_generation_left": Column(F, "deepest generation reached in the left lung"),
        "psf_sigma_xy_mm": Column(F, "in-plane PSF SD used by the blur correction", "mm"),
        "psf_sigma_z_mm": Column(F, "through-plane PSF SD used by the blur correction", "mm"),
        "psf_source": Column(S, "where the in-plane PSF came from: trachea | given | fallback"),
        "measure_image": Column(S, "array the walls were measured on (store/array)"),
    },
    key=("scan_id",),
    doc="Airway tree and per-branch measurement summary, one row per scan (ctpheno.features.airways; "
        "the endpoints are copied onto the whole-lung rows of qct.parquet).",
)

AIRWAY_BRANCHES = TableSchema(
    "airway_branches",
    {
        "scan_id": Column(S, "scan id", nullable=False),
        "branch_id": Column(I, "branch index in the scan's tree (0 = trachea); airways/<scan_id>.zarr labels its "
                               "lumen voxels branch_id + 1", nullable=False),
        "parent_id": Column(I, "parent branch (-1 for the trachea)"),
        "generation": Column(I, "bifurcations from the trachea (0 trachea, 1 main bronchi, 2 lobar ...)"),
        "side": Column(S, "right | left | empty (trachea, or no lung voxel on the branch or below it)"),
        "length_mm": Column(F, "centreline length between junctions", "mm"),
        "inscribed_radius_mm": Column(F, "median inscribed radius of the segmented lumen (search hint)", "mm"),
        "n_children": Column(I, "child branches"),
        "junction": Column(B, "a trifurcation internode (keeps its parent's generation; not measured)"),
        "n_sections": Column(I, "cross-sections placed along the branch"),
        "n_sections_valid": Column(I, "cross-sections with enough valid rays"),
        "measured": Column(B, "n_sections_valid >= features.airways.min_sections"),
        "lumen_radius_mm": Column(F, "median blur-corrected lumen radius", "mm"),
        "outer_radius_mm": Column(F, "median blur-corrected outer wall radius", "mm"),
        "wall_thickness_mm": Column(F, "outer minus lumen radius", "mm"),
        "inner_perimeter_mm": Column(F, "2 pi lumen radius", "mm"),
        "lumen_area_mm2": Column(F, "pi lumen radius^2", "mm^2"),
        "wall_area_mm2": Column(F, "pi (outer^2 - lumen^2)", "mm^2"),
        "wa_pct": Column(F, "wall area % = 100 wall area / outer area", "%"),
    },
    key=("scan_id", "branch_id"),
    doc="One row per branch of each scan's airway tree with its per-branch medians "
        "(ctpheno.features.airways.endpoints).",
)

RADIOMICS = TableSchema(
    "radiomics",
    {"scan_id": Column(S, "scan id", nullable=False), "region": Column(S, "region name", nullable=False)},
    key=("scan_id", "region"),
    extra_prefixes=("original_", "wavelet", "log-sigma", "square", "squareroot", "logarithm",
                    "exponential", "gradient", "lbp-"),
    doc="PyRadiomics features, wide; column names are PyRadiomics' own (diagnostics_* entries and captured "
        "warnings go to features/radiomics_diagnostics.parquet; settings hash and PyRadiomics version to "
        "features/radiomics.settings.json).",
)

EMBEDDINGS = TableSchema(
    "embeddings",
    {
        "scan_id": Column(S, "scan id", nullable=False),
        "region": Column(S, "whole | upper | middle | lower", nullable=False),
        "model": Column(S, "encoder name", nullable=False),
    },
    key=("scan_id", "region", "model"),
    extra_prefixes=("emb_",),
    doc="CNN embeddings, wide (emb_000 ...).",
)

EXCLUDED_SCANS = TableSchema(
    "excluded_scans",
    {
        "scan_id": Column(S, "density scan with a QC flag of a gating severity", nullable=False),
        "reasons": Column(S, "the gating flags, semicolon-separated (meanings: ctpheno.preprocess.qc.QC_FLAG_SEVERITY, "
                             "docs/methods_features.md)"),
        "severity": Column(S, "severity of the flags (exclude by default; models.qc_gate.severities)"),
        "applied": Column(B, "whether the model stages left the scan out (models.qc_gate.enabled)"),
    },
    key=("scan_id",),
    doc="models/excluded_scans.parquet: scans the QC gate leaves out of clustering and the supervised models.",
)

ALL_SCHEMAS = {s.name: s for s in (FAILURES, MANIFEST, SOURCES, QC, QCT, AIRWAYS, AIRWAY_BRANCHES, RADIOMICS,
                                    EMBEDDINGS, EXCLUDED_SCANS)}
