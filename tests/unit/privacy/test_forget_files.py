"""The file rules of `tailor forget`: each kind of file loses the customer's rows or values and
keeps everything else; a file the rules cannot clean is reported, never silently kept."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailor.models.customer_rows import forget_customer_rows
from tailor.models.interactions import IdIndex
from tailor.privacy.forget_files import FORGOTTEN_TEXT, scrub_file

VALUES = ["c42", "ada@example.com", "Ada Lovelace"]


class FittedModel:
    """Stands in for a homepage model: a customer index and rows indexed by it."""

    def __init__(self) -> None:
        self.customers = IdIndex.from_values(pd.Series(["c41", "c42", "c43"]))
        self.user_factors = np.ones((3, 2))
        self.seen = sp.csr_matrix(np.ones((3, 4)))
        self.purchase_counts = np.array([1.0, 2.0, 3.0])


def test_parquet_loses_the_rows_with_a_value_and_keeps_the_rest(tmp_path) -> None:
    path = tmp_path / "customer_features.parquet"
    pd.DataFrame({"customer_id": ["c41", "c42", "c420"], "spend": [1.0, 2.0, 3.0]}).to_parquet(path)
    result = scrub_file(path, "c42", VALUES)
    assert result.removed == {str(path): 1} and not result.left
    assert pd.read_parquet(path)["customer_id"].tolist() == ["c41", "c420"]


def test_csv_rows_json_items_and_text_lose_the_values(tmp_path) -> None:
    table = tmp_path / "retention.csv"
    table.write_text("customer_id,probability\nc41,0.2\nc42,0.9\nc421,0.5\n")
    example = tmp_path / "input_example.json"
    example.write_text(json.dumps({"columns": ["customer_id", "k"],
                                   "data": [["c42", 10], ["c-new", 10]], "note": "for c42"}))
    log = tmp_path / "server.log"
    log.write_text("mail to ada@example.com failed\nserved c420\n")
    for path in (table, example, log):
        assert scrub_file(path, "c42", VALUES).removed
    assert table.read_text().splitlines() == ["customer_id,probability", "c41,0.2", "c421,0.5"]
    assert json.loads(example.read_text()) == {"columns": ["customer_id", "k"],
                                               "data": [["c-new", 10]],
                                               "note": f"for {FORGOTTEN_TEXT}"}
    assert log.read_text() == f"mail to {FORGOTTEN_TEXT} failed\nserved c420\n"


def test_a_pickled_model_loses_the_customer_rows_and_keeps_the_others(tmp_path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(FittedModel()))
    assert scrub_file(path, "c42", VALUES).removed == {str(path): 1}
    model = pickle.loads(path.read_bytes())
    assert "c42" not in model.customers.positions and b"c42\x94" not in path.read_bytes()
    assert model.customers.lookup(pd.Series(["c41", "c42", "c43"])).tolist() == [0, -1, 2]
    assert model.user_factors[1].tolist() == [0, 0] and model.user_factors[2].tolist() == [1, 1]
    assert model.seen[1].nnz == 0 and model.seen[0].nnz == 4
    assert model.purchase_counts.tolist() == [1.0, 0.0, 3.0]
    assert forget_customer_rows(model, "c42") is False  # idempotent


def test_a_binary_that_still_holds_a_value_is_reported(tmp_path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01c42\x02")
    assert scrub_file(path, "c42", VALUES).left == [str(path)]
    untouched = tmp_path / "other.bin"
    untouched.write_bytes(b"\x00c41")
    result = scrub_file(untouched, "c42", VALUES)
    assert not result.removed and not result.left


def test_a_parquet_cell_naming_the_customer_inside_a_longer_text_goes_too(tmp_path) -> None:
    path = tmp_path / "scored.parquet"
    pd.DataFrame({"case_id": ["c42|p1", "c420|p1", "c41|p1"], "score": [0.1, 0.2, 0.3]}
                 ).to_parquet(path)
    assert scrub_file(path, "c42", VALUES).removed == {str(path): 1}
    assert pd.read_parquet(path)["case_id"].tolist() == ["c420|p1", "c41|p1"]
