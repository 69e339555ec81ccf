"""File import (`tailor ingest`, `tailor.events.ingest.job.ingest_files`): products,
customers and events from CSV, JSON Lines or Parquet, local or at an fsspec URL, mapped onto
the contract, checked, read in chunks and stored (`docs/import.md`)."""
