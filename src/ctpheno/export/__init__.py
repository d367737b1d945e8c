"""Results that leave the pipeline: label maps with names (NIfTI, 3D Slicer), DICOM SEG and SR
(highdicom), OME-Zarr. ``ctpheno export`` / the optional ``export`` stage (:mod:`.stage`)."""
