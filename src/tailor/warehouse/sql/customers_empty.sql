-- Customers before the first export: no rows, the contract's columns.
CREATE OR REPLACE VIEW customers AS
SELECT
    CAST(NULL AS VARCHAR) AS customer_id,
    CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS signup_date,
    CAST(NULL AS VARCHAR) AS location,
    CAST(NULL AS VARCHAR) AS device_type
WHERE false;
