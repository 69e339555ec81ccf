-- The prediction log before the first export of an answer: no rows, the same columns and types.
CREATE OR REPLACE VIEW predictions AS
SELECT
    CAST(NULL AS BIGINT) AS seq,
    CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS served_at,
    CAST(NULL AS VARCHAR) AS request_id,
    CAST(NULL AS VARCHAR) AS customer_id,
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS VARCHAR) AS endpoint,
    CAST(NULL AS VARCHAR) AS model,
    CAST(NULL AS VARCHAR) AS model_version,
    CAST(NULL AS VARCHAR) AS variant,
    CAST(NULL AS STRUCT(product_id VARCHAR, score DOUBLE, reason VARCHAR)[]) AS items,
    CAST(NULL AS BIGINT) AS k,
    CAST(NULL AS DOUBLE) AS p_abandon,
    CAST(NULL AS VARCHAR) AS offer,
    CAST(NULL AS BOOLEAN) AS fallback,
    CAST(NULL AS VARCHAR) AS fallback_reason,
    CAST(NULL AS BOOLEAN) AS stale,
    CAST(NULL AS BOOLEAN) AS personalised,
    CAST(NULL AS VARCHAR) AS anchor_product_id,
    CAST(NULL AS VARCHAR) AS experiment,
    CAST(NULL AS VARCHAR) AS experiment_variant,
    CAST(NULL AS DOUBLE) AS latency_ms,
    CAST(NULL AS VARCHAR) AS fallback_kind,
    CAST(NULL AS DATE) AS served_date,
    CAST(NULL AS INTEGER) AS served_hour
WHERE false;
