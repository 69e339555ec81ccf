-- The prediction log: every answer the server gave, from the lake's predictions files
-- (written by tailor.events.prediction_lake, one fixed schema: LAKE_PREDICTION_SCHEMA), with
-- the hive partition folders (the UTC hour of served_at) as typed columns. `items` is a list
-- of (product_id, score, reason) structs in served order: UNNEST(items) gives one row per
-- product shown, to join with the events that followed.
-- {predictions_glob} is the lake's predictions/**/*.parquet pattern. Files written before
-- latency_ms and fallback_kind were logged read them as NULL (union_by_name), and when no file
-- has them yet the warehouse puts a typed NULL in their place ({latency_ms}, {fallback_kind}).
CREATE OR REPLACE VIEW predictions AS
SELECT
    seq, served_at, request_id, customer_id, session_id, endpoint, model, model_version,
    variant, items, k, p_abandon, offer, fallback, fallback_reason, stale, personalised,
    anchor_product_id, experiment, experiment_variant, {latency_ms}, {fallback_kind},
    "date" AS served_date,
    "hour" AS served_hour
FROM read_parquet(
    {predictions_glob},
    hive_partitioning = true,
    union_by_name = true,
    hive_types = {{'date': 'DATE', 'hour': 'INTEGER'}}
);
