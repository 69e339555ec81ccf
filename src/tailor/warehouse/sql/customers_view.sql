-- The pseudonymous customer snapshot written by each lake export (no PII columns).
CREATE OR REPLACE VIEW customers AS
SELECT * FROM read_parquet({customers_file});
