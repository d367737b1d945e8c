"""The clinical table: only allow-listed columns pass, typed; errors name column and row, never a value."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.ingest import ClinicalColumn
from ctpheno.errors import ClinicalTableError
from ctpheno.ingest.clinical import clean_clinical, pseudonymise_clinical
from ctpheno.ingest.pseudonym import Pseudonymizer

COLUMNS = {"age_years": ClinicalColumn(type="float", min=0, max=120),
           "gold_stage": ClinicalColumn(type="int", min=0, max=4),
           "sex": ClinicalColumn(type="category", values=["M", "F"]),
           "prism": ClinicalColumn(type="bool"),
           "visit": ClinicalColumn(type="date")}


def _table(**changes) -> pd.DataFrame:
    df = pd.DataFrame({"subject_id": ["A1", "B2", "C3"], "age_years": [60.0, 71.5, None],
                       "gold_stage": [0, 2, 4], "sex": ["m", "F", None], "prism": ["yes", "0", None],
                       "visit": ["2020-01-20", "2019-12-31", None], "name": ["DOE^JANE", "ROE^R", "X^Y"],
                       "dob": ["1951-02-14", "1948-07-30", ""], "notes": ["smokes; 12 Elm St", "", ""]})
    for k, v in changes.items():
        df[k] = v
    return df


def test_only_allow_listed_columns_pass_with_types_and_date_offsets():
    pseudo = Pseudonymizer(b"k")
    first = {pseudo.subject("A1"): date(2020, 1, 15), pseudo.subject("B2"): date(2020, 1, 1)}
    out = pseudonymise_clinical(_table(), pseudo, id_column="subject_id", columns=COLUMNS, first_dates=first)
    assert list(out.columns) == ["subject_id", "age_years", "gold_stage", "sex", "prism", "visit_offset_days"]
    assert out["sex"].tolist()[:2] == ["M", "F"] and out["prism"].tolist()[:2] == [True, False]
    np.testing.assert_array_equal(out["visit_offset_days"].to_numpy()[:2], [5.0, -1.0])
    assert np.isnan(out["visit_offset_days"].iloc[2]) and out["gold_stage"].dtype == np.float64
    text = out.astype(str).to_csv()
    for leak in ("DOE", "1951", "Elm", "A1", "2020-01-20"):
        assert leak not in text


@pytest.mark.parametrize("column, values, match", [
    ("age_years", [60.0, 999.0, 12.0], r"'age_years' has 1 value\(s\) outside \[0, 120\] in row 2$"),
    ("age_years", ["60", "DOE^JANE", "12"], r"'age_years' must be numeric; row 2 are not"),
    ("gold_stage", [0, 2.5, 1], r"'gold_stage' must hold whole numbers; row 2"),
    ("sex", ["M", "DOE^JANE", "ROE^RICHARD"], r"'sex' must be one of \['F', 'M'\]; rows 2, 3 are not"),
    ("prism", ["yes", "maybe DOE", "no"], r"'prism' must be true/false; row 2"),
    ("visit", ["2020-01-01", "DOE^JANE", None], r"'visit' must hold dates; row 2"),
    ("subject_id", ["A1", "A1", "C3"], r"1 duplicate subject id\(s\) in 'subject_id' \(row 2\)"),
    ("subject_id", ["A1", " ", "C3"], r"empty 'subject_id' in row 2"),
])
def test_errors_name_column_and_rows_never_values(column, values, match):
    with pytest.raises(ClinicalTableError, match=match) as info:
        clean_clinical(_table(**{column: values}), id_column="subject_id", columns=COLUMNS)
    assert "DOE" not in str(info.value) and "999" not in str(info.value) and "2.5" not in str(info.value)
