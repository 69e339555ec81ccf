-- Product activity snapshots, point-in-time correct like customer_features: the row
-- stamped at the start of period D sums only periods before D. Rows exist where a value
-- can change: after a period with activity and where that activity leaves the 1-, 7-
-- and 30-day windows (w1, w7, w30 periods).
WITH activity AS (
    SELECT
        product_id,
        bucket,
        SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS views,
        SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_adds,
        SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
        SUM(CASE WHEN event_type = 'purchase' THEN COALESCE(price * quantity, 0) ELSE 0 END)
            AS revenue
    FROM keyed_events
    WHERE product_id IS NOT NULL AND bucket < {horizon_bucket}
    GROUP BY product_id, bucket
),
snapshots AS (
    SELECT product_id, bucket + 1 AS bucket FROM activity
    UNION
    SELECT product_id, bucket + 1 + {w1} FROM activity
    UNION
    SELECT product_id, bucket + 1 + {w7} FROM activity
    UNION
    SELECT product_id, bucket + 1 + {w30} FROM activity
),
grid AS (
    SELECT
        COALESCE(a.product_id, s.product_id) AS product_id,
        COALESCE(a.bucket, s.bucket) AS bucket,
        s.bucket IS NOT NULL AS is_snapshot,
        COALESCE(a.views, 0) AS views,
        COALESCE(a.cart_adds, 0) AS cart_adds,
        COALESCE(a.purchases, 0) AS purchases,
        COALESCE(a.revenue, 0) AS revenue
    FROM activity AS a
    FULL OUTER JOIN (SELECT * FROM snapshots WHERE bucket <= {horizon_bucket}) AS s
        ON s.product_id = a.product_id AND s.bucket = a.bucket
),
windowed AS (
    SELECT
        product_id,
        bucket,
        is_snapshot,
        COALESCE(SUM(views) OVER last_1, 0) AS views_1d,
        COALESCE(SUM(views) OVER last_7, 0) AS views_7d,
        COALESCE(SUM(views) OVER last_30, 0) AS views_30d,
        COALESCE(SUM(cart_adds) OVER last_7, 0) AS cart_adds_7d,
        COALESCE(SUM(cart_adds) OVER last_30, 0) AS cart_adds_30d,
        COALESCE(SUM(purchases) OVER last_1, 0) AS purchases_1d,
        COALESCE(SUM(purchases) OVER last_7, 0) AS purchases_7d,
        COALESCE(SUM(purchases) OVER last_30, 0) AS purchases_30d,
        COALESCE(SUM(revenue) OVER last_30, 0) AS revenue_30d
    FROM grid
    WINDOW
        last_1 AS (PARTITION BY product_id ORDER BY bucket
                   RANGE BETWEEN {w1} PRECEDING AND 1 PRECEDING),
        last_7 AS (PARTITION BY product_id ORDER BY bucket
                   RANGE BETWEEN {w7} PRECEDING AND 1 PRECEDING),
        last_30 AS (PARTITION BY product_id ORDER BY bucket
                    RANGE BETWEEN {w30} PRECEDING AND 1 PRECEDING)
)
SELECT
    product_id,
    {sql.timestamp_from_seconds:bucket * {bucket_seconds}} AS event_timestamp,
    CAST(views_1d AS BIGINT) AS product_views_1d,
    CAST(views_7d AS BIGINT) AS product_views_7d,
    CAST(views_30d AS BIGINT) AS product_views_30d,
    CAST(cart_adds_7d AS BIGINT) AS product_cart_adds_7d,
    CAST(cart_adds_30d AS BIGINT) AS product_cart_adds_30d,
    CAST(purchases_1d AS BIGINT) AS product_purchases_1d,
    CAST(purchases_7d AS BIGINT) AS product_purchases_7d,
    CAST(purchases_30d AS BIGINT) AS product_purchases_30d,
    CAST(revenue_30d AS DOUBLE) AS product_revenue_30d,
    CAST(views_1d + 1 AS DOUBLE) / (CAST(views_7d AS DOUBLE) / 7 + 1) AS product_trending_ratio,
    CASE WHEN views_30d > 0 THEN CAST(purchases_30d AS DOUBLE) / views_30d ELSE 0.0 END
        AS product_conversion_rate_30d,
    CASE WHEN views_30d > 0 THEN CAST(cart_adds_30d AS DOUBLE) / views_30d ELSE 0.0 END
        AS product_cart_rate_30d
FROM windowed
WHERE is_snapshot;
