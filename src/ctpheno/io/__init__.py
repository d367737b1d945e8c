"""On-disk artifacts: the :class:`Volume` geometry object, table schemas, Zarr stores, work-dir layout.

The HU, label and zone constants they use are those of :mod:`ctpheno.vocab`.
"""

from .layout import WorkDir
from .schemas import ALL_SCHEMAS, EMBEDDINGS, FAILURES, MANIFEST, QC, QCT, RADIOMICS, SOURCES, TableSchema
from .tables import atomic_path, concat_parts, read_json, read_table, write_json, write_table
from .volume import Volume
from .zarrstore import open_volume_store, read_dask, read_volume, write_volume_store

__all__ = [
    "ALL_SCHEMAS", "EMBEDDINGS", "FAILURES", "MANIFEST", "QC", "QCT", "RADIOMICS", "SOURCES", "TableSchema",
    "Volume", "WorkDir", "atomic_path", "concat_parts", "open_volume_store", "read_dask", "read_json",
    "read_table", "read_volume", "write_json", "write_table", "write_volume_store",
]
