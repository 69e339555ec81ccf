-- The shop per UTC day from $first_day to $last_day: sessions that started that day and how
-- many of them bought (a purchase event in the session), orders placed that day and their
-- revenue. Every day of the range is a row, zeros where nothing happened.
WITH days AS (
    SELECT CAST(day AS DATE) AS day
    FROM range(CAST($first_day AS TIMESTAMP), CAST($last_day AS TIMESTAMP) + INTERVAL 1 DAY,
               INTERVAL 1 DAY) AS span(day)
),
session_days AS (
    SELECT CAST(started_at AS DATE) AS day,
           COUNT(*) AS sessions,
           COUNT(*) FILTER (WHERE purchased) AS converted_sessions
    FROM sessions
    WHERE CAST(started_at AS DATE) BETWEEN $first_day AND $last_day
    GROUP BY 1
),
order_days AS (
    SELECT CAST(order_time AS DATE) AS day,
           COUNT(*) AS orders,
           SUM(revenue) AS revenue
    FROM orders
    WHERE CAST(order_time AS DATE) BETWEEN $first_day AND $last_day
    GROUP BY 1
)
SELECT
    days.day,
    COALESCE(session_days.sessions, 0) AS sessions,
    COALESCE(session_days.converted_sessions, 0) AS converted_sessions,
    COALESCE(order_days.orders, 0) AS orders,
    COALESCE(order_days.revenue, 0) AS revenue
FROM days
LEFT JOIN session_days USING (day)
LEFT JOIN order_days USING (day)
ORDER BY days.day;
