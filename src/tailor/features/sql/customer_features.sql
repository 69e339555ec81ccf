-- Customer feature snapshots, point-in-time correct: the row stamped at the start of
-- period D (event_timestamp) sums only periods before D, i.e. events strictly before
-- its timestamp.
-- Rows exist only where a value can change: the period after one with activity, the
-- periods where that activity leaves the 30-day, prior-30-day and 90-day windows
-- (D = b + 1 + w), and one profile row per customer at signup. Between two rows every
-- value is constant, so Feast's as-of join returns the exact value at any time.
-- Recency-style values that change every day are kept as timestamps
-- (last_purchase_at, ...) and turned into days at request time.
-- Windows are counted in periods: w30 = 30 days, w60 = 60 days, w90 = 90 days.
-- category_windows sums each category count over the 90-day window (cat_<i>_90d),
-- category_columns turns them into shares, top_category picks the largest.
WITH snapshots AS (
    -- The profile row: from signup (rounded up to a period boundary), but not before the
    -- first snapshot, so region and signup time are known before the first event.
    SELECT
        customer_id,
        GREATEST({first_bucket},
                 COALESCE(CAST(CEIL({sql.epoch_seconds:signup_date} / {bucket_seconds}) AS BIGINT),
                          {first_bucket})) AS bucket
    FROM customers
    WHERE customer_id IS NOT NULL
    UNION
    SELECT customer_id, bucket + 1 AS bucket FROM customer_buckets
    UNION
    SELECT customer_id, bucket + 1 + {w30} FROM customer_buckets
    UNION
    SELECT customer_id, bucket + 1 + {w60} FROM customer_buckets
    UNION
    SELECT customer_id, bucket + 1 + {w90} FROM customer_buckets
),
grid AS (
    SELECT
        COALESCE(a.customer_id, s.customer_id) AS customer_id,
        COALESCE(a.bucket, s.bucket) AS bucket,
        s.bucket IS NOT NULL AS is_snapshot,
        {bucket_values}
    FROM customer_buckets AS a
    FULL OUTER JOIN (SELECT * FROM snapshots WHERE bucket <= {horizon_bucket}) AS s
        ON s.customer_id = a.customer_id AND s.bucket = a.bucket
),
windowed AS (
    SELECT
        customer_id,
        bucket,
        is_snapshot,
        COALESCE(SUM(orders) OVER lifetime, 0) AS orders_lifetime,
        COALESCE(SUM(orders) OVER last_30, 0) AS orders_30d,
        COALESCE(SUM(orders) OVER prior_30, 0) AS orders_prior_30d,
        COALESCE(SUM(orders) OVER last_90, 0) AS orders_90d,
        COALESCE(SUM(revenue) OVER lifetime, 0) AS revenue_lifetime,
        COALESCE(SUM(revenue) OVER last_30, 0) AS revenue_30d,
        COALESCE(SUM(revenue) OVER last_90, 0) AS revenue_90d,
        COALESCE(SUM(sessions) OVER last_30, 0) AS sessions_30d,
        COALESCE(SUM(active_days) OVER last_30, 0) AS active_days_30d,
        COALESCE(SUM(product_views) OVER last_30, 0) AS product_page_views_30d,
        COALESCE(SUM(searches) OVER last_30, 0) AS searches_30d,
        COALESCE(SUM(cart_adds) OVER last_30, 0) AS cart_adds_30d,
        COALESCE(SUM(carts) OVER last_90, 0) AS carts_90d,
        COALESCE(SUM(abandoned_carts) OVER last_90, 0) AS abandoned_carts_90d,
        COALESCE(SUM(email_opens) OVER last_30, 0) AS email_opens_30d,
        COALESCE(SUM(email_opens) OVER prior_30, 0) AS email_opens_prior_30d,
        COALESCE(SUM(email_opens) OVER last_90, 0) AS email_opens_90d,
        COALESCE(SUM(email_clicks) OVER last_90, 0) AS email_clicks_90d,
        SUM(bought_tier_sum) OVER lifetime AS bought_tier_sum,
        SUM(bought_tier_count) OVER lifetime AS bought_tier_count,
        SUM(viewed_tier_sum) OVER lifetime AS viewed_tier_sum,
        SUM(viewed_tier_count) OVER lifetime AS viewed_tier_count,
        SUM(viewed_price_sum) OVER last_90 AS viewed_price_sum_90d,
        SUM(viewed_price_count) OVER last_90 AS viewed_price_count_90d,
        SUM(purchase_price_sum) OVER lifetime AS purchase_price_sum,
        SUM(purchase_price_count) OVER lifetime AS purchase_price_count,
        MIN(first_event_at) OVER lifetime AS first_seen_at,
        MAX(last_event_at) OVER lifetime AS last_seen_at,
        MAX(last_purchase_at) OVER lifetime AS last_purchase_at,
        {sql.last_non_null:last_device_type} OVER lifetime
            AS last_device_type{category_windows}
    FROM grid
    WINDOW
        lifetime AS (PARTITION BY customer_id ORDER BY bucket
                     RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        last_30 AS (PARTITION BY customer_id ORDER BY bucket
                    RANGE BETWEEN {w30} PRECEDING AND 1 PRECEDING),
        prior_30 AS (PARTITION BY customer_id ORDER BY bucket
                     RANGE BETWEEN {w60} PRECEDING AND {w30_plus_1} PRECEDING),
        last_90 AS (PARTITION BY customer_id ORDER BY bucket
                    RANGE BETWEEN {w90} PRECEDING AND 1 PRECEDING)
),
snapshot_rows AS (
    SELECT * FROM windowed WHERE is_snapshot
)
SELECT
    w.customer_id,
    {sql.timestamp_from_seconds:w.bucket * {bucket_seconds}} AS event_timestamp,
    CAST(w.orders_lifetime AS BIGINT) AS orders_lifetime,
    CAST(w.orders_30d AS BIGINT) AS orders_30d,
    CAST(w.orders_90d AS BIGINT) AS orders_90d,
    CAST(w.revenue_lifetime AS DOUBLE) AS revenue_lifetime,
    CAST(w.revenue_30d AS DOUBLE) AS revenue_30d,
    CAST(w.revenue_90d AS DOUBLE) AS revenue_90d,
    CASE WHEN w.orders_lifetime > 0 THEN w.revenue_lifetime / w.orders_lifetime ELSE 0.0 END
        AS avg_order_value,
    CAST(w.orders_30d + 1 AS DOUBLE) / (w.orders_prior_30d + 1) AS purchase_frequency_trend,
    CAST(w.sessions_30d AS BIGINT) AS sessions_30d,
    CAST(w.active_days_30d AS BIGINT) AS active_days_30d,
    CAST(w.product_page_views_30d AS BIGINT) AS product_page_views_30d,
    CAST(w.searches_30d AS BIGINT) AS searches_30d,
    CAST(w.cart_adds_30d AS BIGINT) AS cart_adds_30d,
    CAST(w.carts_90d AS BIGINT) AS carts_90d,
    CASE WHEN w.carts_90d > 0 THEN CAST(w.abandoned_carts_90d AS DOUBLE) / w.carts_90d ELSE 0.0 END
        AS cart_abandonment_rate_90d,
    CAST(w.email_opens_90d AS BIGINT) AS email_opens_90d,
    CAST(w.email_clicks_90d AS BIGINT) AS email_clicks_90d,
    LEAST(CAST(1 AS DOUBLE), CAST(w.email_opens_90d AS DOUBLE) / 13) AS email_open_rate_90d,
    CASE WHEN w.email_opens_90d > 0 THEN CAST(w.email_clicks_90d AS DOUBLE) / w.email_opens_90d ELSE 0.0 END
        AS email_click_rate_90d,
    CAST(w.email_opens_30d - w.email_opens_prior_30d AS BIGINT) AS email_open_trend,
    CASE
        WHEN COALESCE(w.bought_tier_count, 0) > 0 AND COALESCE(w.viewed_tier_count, 0) > 0
        THEN CAST(w.bought_tier_sum AS DOUBLE) / w.bought_tier_count
             - CAST(w.viewed_tier_sum AS DOUBLE) / w.viewed_tier_count
        ELSE 0.0
    END AS price_sensitivity,
    CASE WHEN COALESCE(w.viewed_price_count_90d, 0) > 0
         THEN w.viewed_price_sum_90d / w.viewed_price_count_90d ELSE 0.0 END
        AS avg_viewed_price_90d,
    CASE WHEN COALESCE(w.purchase_price_count, 0) > 0
         THEN w.purchase_price_sum / w.purchase_price_count ELSE 0.0 END
        AS avg_purchase_price,
    COALESCE(w.last_device_type, c.device_type, 'unknown') AS device_type,
    COALESCE(c.location, 'unknown') AS region,
    -- Whole seconds: Feast's online store keeps timestamps to the second, and training
    -- and serving must compute the same days-since values.
    DATE_TRUNC('second', c.signup_date) AS signup_at,
    DATE_TRUNC('second', w.first_seen_at) AS first_seen_at,
    DATE_TRUNC('second', w.last_seen_at) AS last_seen_at,
    DATE_TRUNC('second', w.last_purchase_at) AS last_purchase_at,
    w.orders_lifetime > 0 AS is_returning_customer,
    {top_category} AS top_category{category_columns}
FROM snapshot_rows AS w
LEFT JOIN customers AS c ON c.customer_id = w.customer_id;
