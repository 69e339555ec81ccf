"""A customer's rows taken out of a fitted model, for the right to be forgotten.

Reads and writes nothing: it changes a fitted model object in memory (`tailor.privacy`
pickles it back into the MLflow and BentoML copies). A model keyed by customers (the
homepage model's `customers` index and the matrices it indexes: ALS user factors, what the
customer saw and bought, category affinity, price tier, order counts) loses the customer's
id from its index and has the customer's rows zeroed, so the id finds nothing (the customer
is scored as an unknown visitor: the cold-start list) and nothing in the model describes the
person any more. Row positions of the other customers do not move. Models that hold no
per-customer state (cross-sell rules, the churn and checkout classifiers) are left alone.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

# The homepage model's per-customer fields, each indexed by `customers` row.
CUSTOMER_ROW_FIELDS: tuple[str, ...] = (
    "user_factors", "seen", "bought", "purchase_counts", "interaction_counts",
    "category_affinity", "preferred_tier",
)
FORGOTTEN_ID = ""  # what stands in the index where a forgotten id was


def holds_customer(model: Any, customer_id: str) -> bool:
    """Whether the model's customer index names `customer_id`."""
    index = getattr(model, "customers", None)
    return index is not None and hasattr(index, "positions") and customer_id in index.positions


def forget_customer_rows(model: Any, customer_id: str) -> bool:
    """Take one customer out of a fitted model, in place.

    Args:
        model: a fitted model from `tailor.models` (or anything else: then nothing happens).
        customer_id: the id to forget.

    Returns:
        True when the model held the customer (and no longer does).
    """
    return bool(forget_rows(model, [customer_id]))


def forget_rows(model: Any, customer_ids: Iterable[str], *, shared: bool = False) -> list[int]:
    """Take some customers out of a fitted model.

    Args:
        model: a fitted model from `tailor.models` (or anything else: then nothing happens).
        customer_ids: the ids to forget (ids the model does not hold are skipped).
        shared: other threads read the model meanwhile (a server's loaded version): a sparse
            matrix is replaced by an edited copy (one attribute swap) instead of being
            compacted under a reader's feet; dense rows are zeroed in place either way (no
            other customer's row moves).

    Returns:
        The rows that were taken out.
    """
    if getattr(model, "customers", None) is None:
        return []
    index = model.customers
    rows = []
    for customer_id in customer_ids:
        if holds_customer(model, customer_id):
            row = index.positions.pop(customer_id)  # from here on the id is a stranger
            index.ids[row] = FORGOTTEN_ID
            rows.append(row)
    if rows:
        for name in CUSTOMER_ROW_FIELDS:
            values = getattr(model, name, None)
            if values is not None:
                setattr(model, name, _zeroed_rows(values, rows, shared))
    return rows


def _zeroed_rows(values: Any, rows: list[int], shared: bool) -> Any:
    """`values` with the rows `rows` set to zero (a dense array or a SciPy sparse matrix), in
    place where it can be (a model just unpickled owns its arrays; no copy of 100s of MB)."""
    if hasattr(values, "tocsr"):  # sparse: drop the rows' stored entries
        matrix = values.tocsr()
        if shared and matrix is values:
            matrix = matrix.copy()
        for row in rows:
            matrix.data[matrix.indptr[row]:matrix.indptr[row + 1]] = 0
        matrix.eliminate_zeros()
        return matrix
    array = values if isinstance(values, np.ndarray) and values.flags.writeable \
        else np.array(values, copy=True)
    inside = [row for row in rows if array.ndim >= 1 and row < array.shape[0]]
    if inside:
        array[inside] = 0
    return array
