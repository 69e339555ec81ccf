-- One row per order, from purchase events.
-- Purchases with an order_id group by it. Purchases without one (shops that do not
-- send order ids) fall back to one order per customer and session, or per customer
-- and UTC day when the session is unknown too; those orders get a derived id
-- 'derived:<customer_id>:<session_id or day>' and order_id_derived = true.
-- Revenue counts a missing quantity as 1 and a missing price as 0.
-- One text for DuckDB (the warehouse's table) and Spark (tailor.batch.spark_engine).
WITH purchases AS (
    SELECT
        COALESCE(
            order_id,
            'derived:' || customer_id || ':'
                || COALESCE(session_id, CAST(CAST(timestamp AS DATE) AS STRING))
        ) AS order_key,
        order_id IS NULL AS order_id_derived,
        customer_id,
        product_id,
        timestamp,
        price,
        COALESCE(quantity, 1) AS quantity
    FROM events
    WHERE event_type = 'purchase'
)
SELECT
    order_key AS order_id,
    MIN_BY(customer_id, timestamp) AS customer_id,
    MIN(timestamp) AS order_time,
    SUM(quantity) AS n_items,
    COUNT(DISTINCT product_id) AS n_products,
    COALESCE(SUM(price * quantity), 0) AS revenue,
    BOOL_OR(order_id_derived) AS order_id_derived
FROM purchases
GROUP BY order_key
ORDER BY order_time, order_id
