-- One row per session.
-- Events with a session_id group by it. Events without one are sessionized per
-- customer: a new session starts after {session_gap_minutes} minutes without an event
-- (events.session_gap_minutes; 30 is the common web
-- analytics definition); those sessions get the id 'derived:<customer_id>:<n>' and
-- session_id_derived = true.
-- device_type is the first non-null device seen in the session.
CREATE OR REPLACE TABLE sessions AS
WITH unsessioned AS (
    SELECT
        *,
        CASE
            WHEN LAG("timestamp") OVER by_customer IS NULL
              OR "timestamp" > LAG("timestamp") OVER by_customer + INTERVAL '{session_gap_minutes} minutes'
            THEN 1 ELSE 0
        END AS starts_session
    FROM events
    WHERE session_id IS NULL
    WINDOW by_customer AS (PARTITION BY customer_id ORDER BY "timestamp", seq)
),
derived AS (
    SELECT
        *,
        SUM(starts_session) OVER (
            PARTITION BY customer_id ORDER BY "timestamp", seq
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_number
    FROM unsessioned
),
sessioned AS (
    SELECT session_id AS session_key, false AS session_id_derived,
           customer_id, "timestamp", event_type, device_type
    FROM events
    WHERE session_id IS NOT NULL
    UNION ALL
    SELECT 'derived:' || customer_id || ':' || CAST(session_number AS VARCHAR), true,
           customer_id, "timestamp", event_type, device_type
    FROM derived
)
SELECT
    session_key AS session_id,
    MIN_BY(customer_id, "timestamp") AS customer_id,
    MIN("timestamp") AS started_at,
    MAX("timestamp") AS ended_at,
    DATE_DIFF('millisecond', MIN("timestamp"), MAX("timestamp")) / 1000.0 AS duration_seconds,
    COUNT(*) AS n_events,
    SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS n_product_views,
    SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS n_searches,
    BOOL_OR(event_type = 'add_to_cart') AS added_to_cart,
    BOOL_OR(event_type = 'checkout_start') AS started_checkout,
    BOOL_OR(event_type = 'purchase') AS purchased,
    MIN_BY(device_type, CASE WHEN device_type IS NOT NULL THEN "timestamp" END) AS device_type,
    BOOL_OR(session_id_derived) AS session_id_derived
FROM sessioned
GROUP BY session_key
ORDER BY started_at, session_id;
