"""The catalogue facts serving looks up per request: each product's category, price, stock.

Reads the warehouse's `products` view (`tailor.warehouse.query_warehouse`) once, when a
pipeline starts. Writes nothing. Without a warehouse the catalogue is empty and says why;
the pipeline then knows categories only from the homepage model and prices only from the
request.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from tailor.config import Settings

log = logging.getLogger(__name__)

CATALOGUE_SQL = "SELECT product_id, category, price, inventory FROM products"


@dataclass(frozen=True)
class Product:
    """What serving knows about one product."""

    category: str
    price: float | None
    in_stock: bool


@dataclass(frozen=True)
class Catalogue:
    """Product id -> `Product`; `error` says why it is empty when it could not be read."""

    products: dict[str, Product] = field(default_factory=dict)
    error: str | None = None

    def __len__(self) -> int:
        return len(self.products)

    def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def load_catalogue(settings: Settings) -> Catalogue:
    """The warehouse catalogue; an empty one (with the reason) when it cannot be read."""
    from tailor.warehouse import query_warehouse

    try:
        frame = query_warehouse(settings, CATALOGUE_SQL)
    except Exception as error:  # no warehouse yet, or one being rebuilt: serve without it
        message = f"catalogue unavailable: {type(error).__name__}: {error}"
        log.warning("serving: %s", message)
        return Catalogue(error=message)
    products = {}
    for product_id, category, price, inventory in frame.itertuples(index=False, name=None):
        stock = _number(inventory)
        products[str(product_id)] = Product(
            category=str(category) if isinstance(category, str) else "",
            price=_number(price), in_stock=stock is None or stock > 0)
    return Catalogue(products)
