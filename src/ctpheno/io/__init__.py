"""On-disk artifacts: the :class:`Volume` geometry object, table schemas, Zarr stores, work-dir layout."""

from .layout import WorkDir
from .schemas import ALL_SCHEMAS, EMBEDDINGS, FAILURES, MANIFEST, QC, QCT, RADIOMICS, SOURCES, TableSchema
from .tables import atomic_path, concat_parts, read_json, read_table, write_json, write_table
from .volume import HU_AIR, Volume
from .zarrstore import (LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES, open_volume_store,
                        read_dask, read_volume, write_volume_store)

__all__ = [
    "ALL_SCHEMAS", "EMBEDDINGS", "FAILURES", "HU_AIR", "LABEL_AIRWAYS", "LABEL_LEFT_LUNG",
    "LABEL_RIGHT_LUNG", "MANIFEST", "QC", "QCT", "RADIOMICS", "SOURCES", "TableSchema", "Volume", "WorkDir",
    "ZONE_CODES", "atomic_path", "concat_parts", "open_volume_store", "read_dask", "read_json",
    "read_table", "read_volume", "write_json", "write_table", "write_volume_store",
]
