-- Every event with its time bucket, its product's category and tier, and a session key.
-- The bucket is the snapshot period the event falls in: FLOOR(epoch seconds / period).
-- Site events without a session_id are sessionized per customer like the warehouse's
-- sessions table (a new session after events.session_gap_minutes without an event); e-mail events
-- belong to no session (session_key NULL).
WITH typed AS (
    SELECT
        e.seq,
        e.customer_id,
        e.event_type,
        e.product_id,
        e.timestamp AS event_time,
        CAST(FLOOR({sql.epoch_seconds:e.timestamp} / {bucket_seconds}) AS BIGINT) AS bucket,
        e.session_id,
        e.price,
        COALESCE(e.quantity, 1) AS quantity,
        e.device_type,
        p.category,
        p.price_tier_index,
        e.event_type IN ('email_open', 'email_click') AS is_email
    FROM events AS e
    LEFT JOIN product_tiers AS p ON p.product_id = e.product_id
    WHERE e.customer_id IS NOT NULL AND e.timestamp IS NOT NULL
),
unsessioned AS (
    SELECT
        seq,
        CASE
            WHEN LAG(event_time) OVER by_customer IS NULL
              OR event_time > LAG(event_time) OVER by_customer + INTERVAL {session_gap_minutes} MINUTES
            THEN 1 ELSE 0
        END AS starts_session
    FROM typed
    WHERE session_id IS NULL AND NOT is_email
    WINDOW by_customer AS (PARTITION BY customer_id ORDER BY event_time, seq)
),
derived AS (
    SELECT
        u.seq,
        SUM(u.starts_session) OVER (
            PARTITION BY t.customer_id ORDER BY t.event_time, t.seq
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_number
    FROM unsessioned AS u
    JOIN typed AS t ON t.seq = u.seq
)
SELECT
    t.*,
    CASE
        WHEN t.is_email THEN NULL
        WHEN t.session_id IS NOT NULL THEN t.session_id
        ELSE 'derived:' || t.customer_id || ':' || CAST(d.session_number AS STRING)
    END AS session_key
FROM typed AS t
LEFT JOIN derived AS d ON d.seq = t.seq;
