-- Session state after every site event, stamped one microsecond after the event so the
-- row holds only events strictly before its timestamp. E-mail events are not part of a
-- session. When events of a session share a timestamp, one row holds them all. The
-- real-time update (tailor.features.realtime) applies the same rules to arriving events
-- and pushes the result through the session push source.
WITH first_events AS (
    SELECT customer_id, MIN(event_time) AS customer_first_event_at
    FROM keyed_events
    GROUP BY customer_id
),
site AS (
    SELECT k.*, f.customer_first_event_at
    FROM keyed_events AS k
    JOIN first_events AS f ON f.customer_id = k.customer_id
    WHERE k.session_key IS NOT NULL
),
-- The categories viewed so far change only at the first view of a category in a session:
-- build the sorted list at those few events, then carry it forward.
first_views AS (
    SELECT session_key, category, event_time, seq
    FROM (
        SELECT
            session_key, category, event_time, seq,
            ROW_NUMBER() OVER (PARTITION BY session_key, category ORDER BY event_time, seq)
                AS view_number
        FROM site
        WHERE event_type = 'product_view' AND category IS NOT NULL
    ) AS views
    WHERE view_number = 1
),
viewed_lists AS (
    SELECT later.seq, {sql.sorted_list:earlier.category} AS viewed
    FROM first_views AS later
    JOIN first_views AS earlier
      ON earlier.session_key = later.session_key
     AND (earlier.event_time < later.event_time
          OR (earlier.event_time = later.event_time AND earlier.seq <= later.seq))
    GROUP BY later.seq
),
running AS (
    SELECT
        customer_id,
        seq,
        event_time,
        session_key AS session_id,
        MIN(event_time) OVER in_session AS session_started_at,
        COUNT(*) OVER in_session AS session_events,
        SUM(CASE WHEN event_type IN ('page_view', 'product_view') THEN 1 ELSE 0 END)
            OVER in_session AS session_page_views,
        SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END)
            OVER in_session AS session_product_views,
        SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) OVER in_session AS session_searches,
        SUM(CASE WHEN event_type = 'add_to_cart' THEN quantity
                 WHEN event_type = 'remove_from_cart' THEN -quantity ELSE 0 END)
            OVER in_session AS session_cart_items,
        SUM(CASE WHEN event_type = 'add_to_cart' THEN COALESCE(price, 0) * quantity
                 WHEN event_type = 'remove_from_cart' THEN -COALESCE(price, 0) * quantity
                 ELSE 0 END)
            OVER in_session AS session_cart_value,
        {sql.last_non_null:v.viewed} OVER in_session AS viewed,
        BOOL_OR(event_type = 'checkout_start') OVER in_session AS session_checkout_started,
        {sql.first_non_null:device_type} OVER in_session AS session_device_type,
        LEAD(event_time) OVER session_order AS next_event_time,
        customer_first_event_at
    FROM site
    LEFT JOIN viewed_lists AS v USING (seq)
    WINDOW
        in_session AS (PARTITION BY session_key ORDER BY event_time, seq
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        session_order AS (PARTITION BY session_key ORDER BY event_time, seq)
)
SELECT
    customer_id,
    event_time + INTERVAL 1 MICROSECOND AS event_timestamp,
    session_id,
    DATE_TRUNC('second', session_started_at) AS session_started_at,  -- as Feast stores it
    ({sql.epoch_micros:event_time} - {sql.epoch_micros:DATE_TRUNC('second', session_started_at)})
        / 1e6 AS session_length_seconds,
    CAST(session_events AS BIGINT) AS session_events,
    CAST(session_page_views AS BIGINT) AS session_page_views,
    CAST(session_product_views AS BIGINT) AS session_product_views,
    CAST(session_searches AS BIGINT) AS session_searches,
    CAST(session_cart_items AS DOUBLE) AS session_cart_items,
    CAST(session_cart_value AS DOUBLE) AS session_cart_value,
    CAST(COALESCE({sql.list_length:viewed}, 0) AS BIGINT) AS session_categories_viewed,
    COALESCE(viewed, {sql.empty_string_list}) AS session_viewed_categories,
    session_checkout_started,
    COALESCE(session_device_type, 'unknown') AS session_device_type,
    customer_first_event_at < session_started_at AS session_is_returning_visitor
FROM running
-- Several events at one instant (clients that send whole seconds) leave one row: the last.
WHERE next_event_time IS NULL OR next_event_time > event_time;
