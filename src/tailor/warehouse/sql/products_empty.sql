-- The catalogue before the first export: no rows, the contract's columns.
CREATE OR REPLACE VIEW products AS
SELECT
    CAST(NULL AS VARCHAR) AS product_id,
    CAST(NULL AS VARCHAR) AS name,
    CAST(NULL AS VARCHAR) AS category,
    CAST(NULL AS DOUBLE) AS price,
    CAST(NULL AS DOUBLE) AS rating,
    CAST(NULL AS BIGINT) AS inventory,
    CAST(NULL AS BOOLEAN) AS seasonal
WHERE false;
