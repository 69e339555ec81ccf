"""The DuckDB warehouse over the Parquet lake: events, customers, products, orders, sessions."""
