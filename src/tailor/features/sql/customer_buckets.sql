-- Per customer and snapshot period (bucket): the additive pieces every customer feature
-- is summed from. Only periods before the newest snapshot (horizon_bucket) matter.
-- Orders count in the period of their first purchase event (the warehouse's orders
-- table), sessions in the period of their first event, active days in the period of
-- the day's first event, carts per session and period.
-- category_counts adds one interaction count per catalogue category.
WITH recent AS (
    SELECT * FROM keyed_events WHERE bucket < {horizon_bucket}
),
event_counts AS (
    SELECT
        customer_id,
        bucket,
        SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS product_views,
        SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS searches,
        SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_adds,
        SUM(CASE WHEN event_type = 'email_open' THEN 1 ELSE 0 END) AS email_opens,
        SUM(CASE WHEN event_type = 'email_click' THEN 1 ELSE 0 END) AS email_clicks,
        SUM(CASE WHEN event_type = 'purchase' THEN COALESCE(price * quantity, 0) ELSE 0 END)
            AS revenue,
        SUM(CASE WHEN event_type = 'purchase' THEN price END) AS purchase_price_sum,
        SUM(CASE WHEN event_type = 'purchase' AND price IS NOT NULL THEN 1 ELSE 0 END)
            AS purchase_price_count,
        SUM(CASE WHEN event_type = 'product_view' THEN price END) AS viewed_price_sum,
        SUM(CASE WHEN event_type = 'product_view' AND price IS NOT NULL THEN 1 ELSE 0 END)
            AS viewed_price_count,
        SUM(CASE WHEN event_type = 'purchase' THEN price_tier_index END) AS bought_tier_sum,
        SUM(CASE WHEN event_type = 'purchase' AND price_tier_index IS NOT NULL THEN 1 ELSE 0 END)
            AS bought_tier_count,
        SUM(CASE WHEN event_type = 'product_view' THEN price_tier_index END) AS viewed_tier_sum,
        SUM(CASE WHEN event_type = 'product_view' AND price_tier_index IS NOT NULL
                 THEN 1 ELSE 0 END) AS viewed_tier_count,
        MIN(event_time) AS first_event_at,
        MAX(event_time) AS last_event_at,
        MAX(CASE WHEN event_type = 'purchase' THEN event_time END) AS last_purchase_at,
        MAX_BY(device_type, CASE WHEN device_type IS NOT NULL THEN event_time END)
            AS last_device_type{category_counts}
    FROM recent
    GROUP BY customer_id, bucket
),
order_counts AS (
    SELECT
        customer_id,
        CAST(FLOOR({sql.epoch_seconds:order_time} / {bucket_seconds}) AS BIGINT) AS bucket,
        COUNT(*) AS orders
    FROM orders
    WHERE customer_id IS NOT NULL
    GROUP BY 1, 2
),
session_starts AS (
    SELECT customer_id, MIN(bucket) AS bucket
    FROM keyed_events
    WHERE session_key IS NOT NULL
    GROUP BY customer_id, session_key
),
session_counts AS (
    SELECT customer_id, bucket, COUNT(*) AS sessions FROM session_starts GROUP BY 1, 2
),
day_starts AS (
    SELECT customer_id, MIN(bucket) AS bucket
    FROM keyed_events
    GROUP BY customer_id, CAST(event_time AS DATE)
),
day_counts AS (
    SELECT customer_id, bucket, COUNT(*) AS active_days FROM day_starts GROUP BY 1, 2
),
carts AS (
    SELECT
        customer_id,
        bucket,
        MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchased
    FROM recent
    WHERE session_key IS NOT NULL
    GROUP BY customer_id, session_key, bucket
    HAVING MAX(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) = 1
),
cart_counts AS (
    SELECT customer_id, bucket, COUNT(*) AS carts, SUM(1 - purchased) AS abandoned_carts
    FROM carts
    GROUP BY 1, 2
)
SELECT
    e.*,
    COALESCE(o.orders, 0) AS orders,
    COALESCE(s.sessions, 0) AS sessions,
    COALESCE(d.active_days, 0) AS active_days,
    COALESCE(c.carts, 0) AS carts,
    COALESCE(c.abandoned_carts, 0) AS abandoned_carts
FROM event_counts AS e
LEFT JOIN order_counts AS o USING (customer_id, bucket)
LEFT JOIN session_counts AS s USING (customer_id, bucket)
LEFT JOIN day_counts AS d USING (customer_id, bucket)
LEFT JOIN cart_counts AS c USING (customer_id, bucket);
