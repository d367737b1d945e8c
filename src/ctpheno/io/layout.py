"""Layout of a ctpheno work directory — a public contract.

Users' scripts read these paths; every stage reads and writes through
:class:`WorkDir` rather than building paths by hand::

    <workdir>/
      manifest.parquet            ingest: one row per discovered series (schema MANIFEST)
      ingest/sources.parquet      ingest: scan_id -> file list (the only place raw paths live; mode 0600)
      clinical.parquet            ingest: validated clinical table, pseudonymised ids
      failures.parquet            every stage: per-scan failures (schema FAILURES)
      volumes/<scan_id>.zarr      preprocess: image / labels / zones arrays + geometry attrs; analysis/ (isotropic grid)
      qc/<scan_id>.png            preprocess: QC montage
      qc/qc.parquet               preprocess: QC numbers (schema QC)
      features/qct.parquet        features: QCT metrics, long by region (schema QCT)
      features/airways.parquet    airways: tree and endpoint summary per scan (schema AIRWAYS)
      features/airway_branches.parquet  airways: one row per branch (schema AIRWAY_BRANCHES)
      airways/<scan_id>.zarr      airways: lumen voxels labelled branch_id + 1 (geometry of the volume store)
      qc/<scan_id>_airways.png    airways: tree by generation and cross-section gallery
      features/radiomics.parquet  features: PyRadiomics, wide (scan_id, region, original_*...)
      features/embeddings.parquet embed: CNN embeddings (scan_id, region, model, emb_000...)
      models/                     train: fitted models, CV tables, cluster assignments;
                                  models/<stage>/skipped.json says why a stage fitted nothing
      models/excluded_scans.parquet  train: scans the QC gate left out, with their flags
      report/index.html           eval: self-contained HTML report
      runs/<run_id>/              config.resolved.yaml, versions.json, run.log, command.txt (input
                                  paths as <input0>..., secrets as ***), status.json (running |
                                  done | incomplete)
      parts/<stage>/<scan_id>.parquet   per-scan partial tables (consolidated into the above)
      state/<stage>/<scan_id>.json      completion markers (input+config hash) for resume
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class _Below:
    """A fixed path below the work directory, read as an attribute (``wd.manifest``)."""

    def __init__(self, *parts: str, doc: str = "") -> None:
        self.parts = parts
        self.__doc__ = doc or f"``<workdir>/{'/'.join(parts)}``."

    def __get__(self, wd: "WorkDir | None", owner: type | None = None):
        if wd is None:
            return self
        return wd.root.joinpath(*self.parts)


@dataclass(frozen=True)
class WorkDir:
    """Paths inside one work directory (nothing is created until asked)."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    # tables and folders
    manifest = _Below("manifest.parquet")
    sources = _Below("ingest", "sources.parquet",
                     doc="Ingest's private index of input files per scan (raw paths may contain identifiers).")
    clinical = _Below("clinical.parquet")
    failures = _Below("failures.parquet")
    qc_table = _Below("qc", "qc.parquet")
    features_dir = _Below("features")
    qct = _Below("features", "qct.parquet")
    airways = _Below("features", "airways.parquet")
    airway_branches = _Below("features", "airway_branches.parquet")
    radiomics = _Below("features", "radiomics.parquet")
    embeddings = _Below("features", "embeddings.parquet")
    models_dir = _Below("models")
    excluded_scans = _Below("models", "excluded_scans.parquet", doc="Scans the QC gate left out of the model "
                            "stages, with the flags why (``ctpheno.preprocess.gate``).")
    report_dir = _Below("report")
    report = _Below("report", "index.html")
    runs_dir = _Below("runs")

    # per-scan artifacts
    def volume(self, scan_id: str) -> Path:
        return self.root / "volumes" / f"{scan_id}.zarr"

    def qc_png(self, scan_id: str) -> Path:
        return self.root / "qc" / f"{scan_id}.png"

    def airway_tree(self, scan_id: str) -> Path:
        return self.root / "airways" / f"{scan_id}.zarr"

    def qc_airways_png(self, scan_id: str) -> Path:
        return self.root / "qc" / f"{scan_id}_airways.png"

    def part(self, stage: str, scan_id: str) -> Path:
        return self.root / "parts" / stage / f"{scan_id}.parquet"

    def parts_dir(self, stage: str) -> Path:
        return self.root / "parts" / stage

    def marker(self, stage: str, scan_id: str) -> Path:
        return self.root / "state" / stage / f"{scan_id}.json"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def ensure(self) -> "WorkDir":
        self.root.mkdir(parents=True, exist_ok=True)
        return self
