"""The DuckDB warehouse over the Parquet lake: events, customers, products, predictions, orders,
sessions."""

from tailor.warehouse.duckdb_warehouse import open_warehouse, query_warehouse, refresh_warehouse

__all__ = ["open_warehouse", "query_warehouse", "refresh_warehouse"]
