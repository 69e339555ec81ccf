"""The batch engines the features and the quality gate run their SQL on: DuckDB over the
warehouse, or Spark over the same Parquet lake (`features.engine`), and the SQL dialect
renderings that let one query text run on both."""
