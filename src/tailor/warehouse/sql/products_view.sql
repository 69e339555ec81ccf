-- The catalogue snapshot written by each lake export.
CREATE OR REPLACE VIEW products AS
SELECT * FROM read_parquet({products_file});
