-- The events table before the first export: no rows, the same columns and types.
CREATE OR REPLACE VIEW events AS
SELECT
    CAST(NULL AS BIGINT) AS seq,
    CAST(NULL AS VARCHAR) AS event_id,
    CAST(NULL AS VARCHAR) AS customer_id,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS product_id,
    CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS "timestamp",
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS DOUBLE) AS price,
    CAST(NULL AS DOUBLE) AS quantity,
    CAST(NULL AS VARCHAR) AS order_id,
    CAST(NULL AS VARCHAR) AS device_type,
    CAST(NULL AS VARCHAR) AS query,
    CAST(NULL AS VARCHAR) AS properties,
    CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS received_at,
    CAST(NULL AS DATE) AS event_date,
    CAST(NULL AS INTEGER) AS event_hour
WHERE false;
