-- The events table: every lake file, with the hive partition folders as typed columns.
-- {events_glob} is the lake's events/**/*.parquet pattern (formatted in by tailor.warehouse).
-- Every file has the same schema (tailor.events.lake.LAKE_EVENT_SCHEMA); if it ever grows a
-- column, add union_by_name = true so older files read with the new column as NULL.
-- Spark: CREATE VIEW events USING parquet OPTIONS (path '<lake>/events');
-- Snowflake: an external table over the same stage, partitioned by date and hour.
CREATE OR REPLACE VIEW events AS
SELECT
    seq, event_id, customer_id, event_type, product_id, "timestamp", session_id,
    price, quantity, order_id, device_type, query, properties, received_at,
    "date" AS event_date,
    "hour" AS event_hour
FROM read_parquet(
    {events_glob},
    hive_partitioning = true,
    hive_types = {{'date': 'DATE', 'hour': 'INTEGER'}}
);
