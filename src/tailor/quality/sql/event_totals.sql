-- The quality rules' totals over the stored events: rows, rows breaking a row rule, and the
-- newest event (microseconds since 1970). One text for DuckDB and Spark (tailor.sql_dialects);
-- {now_micros} is the gate's reference time.
SELECT
    COUNT(*) AS stored,
    COALESCE(SUM(CASE WHEN customer_id IS NULL OR TRIM(customer_id) = '' THEN 1 ELSE 0 END), 0)
        AS missing_customer_id,
    COALESCE(SUM(CASE WHEN price IS NOT NULL AND price <= 0 THEN 1 ELSE 0 END), 0)
        AS nonpositive_price,
    COALESCE(SUM(CASE WHEN {sql.epoch_micros:timestamp} > {now_micros} THEN 1 ELSE 0 END), 0)
        AS future_timestamp,
    MAX({sql.epoch_micros:timestamp}) AS latest_event_micros
FROM events
