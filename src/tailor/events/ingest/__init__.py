"""File import (`tailor ingest`, `tailor.events.ingest.job.ingest_files`): products,
customers and events from CSV or Parquet, checked, read in chunks and stored."""
