"""What the demo shop's pages show besides the answers: the products and the known customers.

Reads the warehouse (`products`: id, name, category, price; `orders`: the customers with
the most orders, by id only: no name or e-mail ever reaches the shop's pages). Writes
nothing. Without a warehouse the shop is empty and says why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from tailor.config import Settings

log = logging.getLogger(__name__)

PRODUCTS_SQL = """
SELECT product_id, name, category, price FROM products
WHERE product_id IS NOT NULL ORDER BY category, name, product_id
"""
CUSTOMERS_SQL = """
SELECT customer_id, count(*) AS orders FROM orders
WHERE customer_id IS NOT NULL AND customer_id NOT LIKE 'anon-%'
GROUP BY 1 ORDER BY orders DESC, customer_id LIMIT ?
"""
SWITCHER_CUSTOMERS = 12  # known customers offered by the "who am I" switcher


@dataclass(frozen=True)
class ShopCatalogue:
    """The products (id, name, category, price) and the switcher's known customers (id and
    order count); `error` says why they are empty when the warehouse could not be read."""

    products: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        categories = sorted({product["category"] for product in self.products
                             if product["category"]})
        return {"products": self.products, "customers": self.customers,
                "categories": categories, "error": self.error}


def _price(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, 2)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def load_shop_catalogue(settings: Settings,
                        customers: int = SWITCHER_CUSTOMERS) -> ShopCatalogue:
    """The warehouse's catalogue and its `customers` most frequent buyers; an empty
    catalogue with the reason when the warehouse cannot be read."""
    from tailor.warehouse import query_warehouse

    try:
        products = query_warehouse(settings, PRODUCTS_SQL)
        buyers = query_warehouse(settings, CUSTOMERS_SQL, [customers])
    except Exception as error:  # no warehouse yet: the shop says so instead of failing
        message = f"catalogue unavailable: {type(error).__name__}: {error}"
        log.warning("demo shop: %s", message)
        return ShopCatalogue(error=message)
    return ShopCatalogue(
        products=[{"product_id": str(product_id), "name": _text(name) or str(product_id),
                   "category": _text(category), "price": _price(price)}
                  for product_id, name, category, price
                  in products.itertuples(index=False, name=None)],
        customers=[{"customer_id": str(customer_id), "orders": int(orders)}
                   for customer_id, orders in buyers.itertuples(index=False, name=None)])
