"""PyRadiomics feature name -> IBSI-1 feature tag (Zwanenburg et al., Radiology 2020; arXiv:1612.07003).

Texture tags are given without their aggregation suffix; :func:`ibsi_tag_candidates`
adds the suffix matching how PyRadiomics aggregates (3D: GLCM/GLRLM features are
computed per direction and averaged -> ``_3D_avg``; GLSZM/GLDM/NGTDM from one 3D
matrix -> ``_3D``; ``force2D``: per-direction matrices merged over slices ->
``_2_5D_avg`` / ``_2_5D``). ``None`` marks a PyRadiomics feature with no IBSI
counterpart. :data:`KNOWN_DEVIATIONS` gives PyRadiomics' documented reasons why a
value differs from the IBSI definition.
"""

from __future__ import annotations

IBSI_TAGS: dict[str, str | None] = {
    # first order: statistics (stat_) on the un-discretised intensities, histogram (ih_) on the discretised
    "firstorder_10Percentile": "stat_p10",
    "firstorder_90Percentile": "stat_p90",
    "firstorder_Energy": "stat_energy",
    "firstorder_Entropy": "ih_entropy",
    "firstorder_InterquartileRange": "stat_iqr",
    "firstorder_Kurtosis": "stat_kurt",
    "firstorder_Maximum": "stat_max",
    "firstorder_Mean": "stat_mean",
    "firstorder_MeanAbsoluteDeviation": "stat_mad",
    "firstorder_Median": "stat_median",
    "firstorder_Minimum": "stat_min",
    "firstorder_Range": "stat_range",
    "firstorder_RobustMeanAbsoluteDeviation": "stat_rmad",
    "firstorder_RootMeanSquared": "stat_rms",
    "firstorder_Skewness": "stat_skew",
    "firstorder_StandardDeviation": None,
    "firstorder_TotalEnergy": None,
    "firstorder_Uniformity": "ih_uniformity",
    "firstorder_Variance": "stat_var",
    # shape (morphology)
    "shape_Compactness1": "morph_comp_1",
    "shape_Compactness2": "morph_comp_2",
    "shape_Elongation": "morph_pca_elongation",
    "shape_Flatness": "morph_pca_flatness",
    "shape_LeastAxisLength": "morph_pca_least_axis",
    "shape_MajorAxisLength": "morph_pca_maj_axis",
    "shape_MinorAxisLength": "morph_pca_min_axis",
    "shape_Maximum2DDiameterColumn": None,
    "shape_Maximum2DDiameterRow": None,
    "shape_Maximum2DDiameterSlice": None,
    "shape_Maximum3DDiameter": "morph_diam",
    "shape_MeshVolume": "morph_volume",
    "shape_SphericalDisproportion": "morph_sph_dispr",
    "shape_Sphericity": "morph_sphericity",
    "shape_SurfaceArea": "morph_area_mesh",
    "shape_SurfaceVolumeRatio": "morph_av",
    "shape_VoxelVolume": "morph_vol_approx",
    # GLCM
    "glcm_Autocorrelation": "cm_auto_corr",
    "glcm_ClusterProminence": "cm_clust_prom",
    "glcm_ClusterShade": "cm_clust_shade",
    "glcm_ClusterTendency": "cm_clust_tend",
    "glcm_Contrast": "cm_contrast",
    "glcm_Correlation": "cm_corr",
    "glcm_DifferenceAverage": "cm_diff_avg",
    "glcm_DifferenceEntropy": "cm_diff_entr",
    "glcm_DifferenceVariance": "cm_diff_var",
    "glcm_Dissimilarity": "cm_dissimilarity",
    "glcm_Homogeneity1": "cm_inv_diff",
    "glcm_Homogeneity2": "cm_inv_diff_mom",
    "glcm_Id": "cm_inv_diff",
    "glcm_Idm": "cm_inv_diff_mom",
    "glcm_Idmn": "cm_inv_diff_mom_norm",
    "glcm_Idn": "cm_inv_diff_norm",
    "glcm_Imc1": "cm_info_corr1",
    "glcm_Imc2": "cm_info_corr2",
    "glcm_InverseVariance": "cm_inv_var",
    "glcm_JointAverage": "cm_joint_avg",
    "glcm_JointEnergy": "cm_energy",
    "glcm_JointEntropy": "cm_joint_entr",
    "glcm_MCC": None,
    "glcm_MaximumProbability": "cm_joint_max",
    "glcm_SumAverage": "cm_sum_avg",
    "glcm_SumEntropy": "cm_sum_entr",
    "glcm_SumSquares": "cm_joint_var",
    "glcm_SumVariance": "cm_sum_var",
    # GLRLM
    "glrlm_GrayLevelNonUniformity": "rlm_glnu",
    "glrlm_GrayLevelNonUniformityNormalized": "rlm_glnu_norm",
    "glrlm_GrayLevelVariance": "rlm_gl_var",
    "glrlm_HighGrayLevelRunEmphasis": "rlm_hgre",
    "glrlm_LongRunEmphasis": "rlm_lre",
    "glrlm_LongRunHighGrayLevelEmphasis": "rlm_lrhge",
    "glrlm_LongRunLowGrayLevelEmphasis": "rlm_lrlge",
    "glrlm_LowGrayLevelRunEmphasis": "rlm_lgre",
    "glrlm_RunEntropy": "rlm_rl_entr",
    "glrlm_RunLengthNonUniformity": "rlm_rlnu",
    "glrlm_RunLengthNonUniformityNormalized": "rlm_rlnu_norm",
    "glrlm_RunPercentage": "rlm_r_perc",
    "glrlm_RunVariance": "rlm_rl_var",
    "glrlm_ShortRunEmphasis": "rlm_sre",
    "glrlm_ShortRunHighGrayLevelEmphasis": "rlm_srhge",
    "glrlm_ShortRunLowGrayLevelEmphasis": "rlm_srlge",
    # GLSZM
    "glszm_GrayLevelNonUniformity": "szm_glnu",
    "glszm_GrayLevelNonUniformityNormalized": "szm_glnu_norm",
    "glszm_GrayLevelVariance": "szm_gl_var",
    "glszm_HighGrayLevelZoneEmphasis": "szm_hgze",
    "glszm_LargeAreaEmphasis": "szm_lze",
    "glszm_LargeAreaHighGrayLevelEmphasis": "szm_lzhge",
    "glszm_LargeAreaLowGrayLevelEmphasis": "szm_lzlge",
    "glszm_LowGrayLevelZoneEmphasis": "szm_lgze",
    "glszm_SizeZoneNonUniformity": "szm_zsnu",
    "glszm_SizeZoneNonUniformityNormalized": "szm_zsnu_norm",
    "glszm_SmallAreaEmphasis": "szm_sze",
    "glszm_SmallAreaHighGrayLevelEmphasis": "szm_szhge",
    "glszm_SmallAreaLowGrayLevelEmphasis": "szm_szlge",
    "glszm_ZoneEntropy": "szm_zs_entr",
    "glszm_ZonePercentage": "szm_z_perc",
    "glszm_ZoneVariance": "szm_zs_var",
    # GLDM = IBSI neighbouring grey level dependence (alpha = gldm_a = 0, Chebyshev distance 1)
    "gldm_DependenceEntropy": "ngl_dc_entr",
    "gldm_DependenceNonUniformity": "ngl_dcnu",
    "gldm_DependenceNonUniformityNormalized": "ngl_dcnu_norm",
    "gldm_DependencePercentage": "ngl_dc_perc",
    "gldm_DependenceVariance": "ngl_dc_var",
    "gldm_GrayLevelNonUniformity": "ngl_glnu",
    "gldm_GrayLevelNonUniformityNormalized": "ngl_glnu_norm",
    "gldm_GrayLevelVariance": "ngl_gl_var",
    "gldm_HighGrayLevelEmphasis": "ngl_hgce",
    "gldm_LargeDependenceEmphasis": "ngl_hde",
    "gldm_LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge",
    "gldm_LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge",
    "gldm_LowGrayLevelEmphasis": "ngl_lgce",
    "gldm_SmallDependenceEmphasis": "ngl_lde",
    "gldm_SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge",
    "gldm_SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge",
    # NGTDM
    "ngtdm_Busyness": "ngt_busyness",
    "ngtdm_Coarseness": "ngt_coarseness",
    "ngtdm_Complexity": "ngt_complexity",
    "ngtdm_Contrast": "ngt_contrast",
    "ngtdm_Strength": "ngt_strength",
}

_AVG_CLASSES = ("glcm", "glrlm")
_MATRIX_CLASSES = ("glszm", "gldm", "ngtdm")

KNOWN_DEVIATIONS: dict[str, str] = {
    "stat_kurt": (
        "PyRadiomics reports kurtosis, IBSI excess kurtosis: PyRadiomics = IBSI + 3 "
        "(PyRadiomics docs, firstorder)."
    ),
    "morph_pca_min_axis": (
        "PyRadiomics takes the PCA axes from np.cov of the voxel-centre coordinates, which normalises by "
        "N - 1; IBSI uses the population covariance (N). Axis lengths are therefore sqrt((N-1)/N) of "
        "IBSI's: -0.68 % for the 74-voxel digital phantom, outside its tolerance; negligible for lungs."
    ),
    "morph_pca_least_axis": (
        "As morph_pca_min_axis: np.cov's N - 1 normalisation makes the axis sqrt((N-1)/N) of IBSI's "
        "(-0.68 % for the 74-voxel digital phantom)."
    ),
    "ngt_coarseness": (
        "PyRadiomics caps coarseness at 1e6 when the sum of differences is 0 (same definition otherwise)."
    ),
}
"""Per-tag reasons (PyRadiomics documentation, 'Radiomic Features' and 'IBSI' pages)."""

_NN_MASK = (
    "PyRadiomics resamples the mask by nearest neighbour (IBSI: trilinear, then a 0.5 partial-volume "
    "threshold), does not round interpolated CT intensities to integers, and aligns its resampling grid "
    "to the ROI bounding-box corner (IBSI: centre alignment)"
)
CONFIG_DEVIATIONS: dict[str, str] = {
    "A": (
        "2D texture: PyRadiomics' force2D merges in-plane matrices over slices (IBSI 2.5D), and it bins "
        "fixed bin widths from floor(min/w)*w rather than from the re-segmentation range's lower bound "
        "(-500 HU)."
    ),
    "B": _NN_MASK + "; in 2D as in configuration A.",
    "C": _NN_MASK
    + "; fixed-bin-width edges start at floor(min/25)*25, not at the -1000 HU re-segmentation bound.",
    "D": _NN_MASK + "; 3-sigma outlier filtering is resegmentMode 'sigma' on the resampled image.",
    "E": _NN_MASK + "; PyRadiomics cannot combine a range re-segmentation with 3-sigma filtering (one "
    "resegmentMode), and sitkBSpline is a cubic B-spline, not IBSI's tricubic convolution.",
}
"""Per-configuration reasons for CT-phantom failures not covered by :data:`KNOWN_DEVIATIONS`."""


def ibsi_tag_candidates(feature_class: str, tag: str, *, two_d: bool = False) -> list[str]:
    """Reference-table tags to look up for a mapped PyRadiomics feature, best first."""
    dim = "2_5D" if two_d else "3D"
    if feature_class in _AVG_CLASSES:
        return [f"{tag}_{dim}_avg"]
    if feature_class in _MATRIX_CLASSES:
        return [f"{tag}_{dim}"]
    return [tag]
