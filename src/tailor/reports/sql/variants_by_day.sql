-- Sessions, buying sessions, orders and revenue per UTC day (of the session's start), model
-- and variant, from $first_day to $last_day.
-- A session's variant for a model is the variant of the first answer of that model it was
-- served: answers are matched to sessions by session id; an answer without one (or with an
-- id the events never used) by customer, when it was served between {session_gap_minutes}
-- minutes before the session's first event and its last (the answer comes before the page
-- that shows it). Sessions served no answer of a model do not count for it. An order counts
-- in the session of its customer that was running when it was placed.
WITH chosen_sessions AS (
    SELECT session_id, customer_id, started_at, ended_at, purchased,
           CAST(started_at AS DATE) AS day
    FROM sessions
    WHERE CAST(started_at AS DATE) BETWEEN $first_day AND $last_day
),
answers AS (
    SELECT predictions.served_at, predictions.customer_id, predictions.model,
           predictions.variant, predictions.session_id,
           known.session_id IS NOT NULL AS known_session
    FROM predictions
    LEFT JOIN (SELECT DISTINCT session_id FROM sessions) AS known
        ON known.session_id = predictions.session_id
    WHERE predictions.served_at >= CAST($first_day AS TIMESTAMPTZ) - INTERVAL 1 DAY
      AND predictions.served_at < CAST($last_day AS TIMESTAMPTZ) + INTERVAL 2 DAY
),
matched AS (
    SELECT chosen_sessions.session_id, answers.model, answers.variant, answers.served_at
    FROM chosen_sessions
    JOIN answers ON answers.known_session AND answers.session_id = chosen_sessions.session_id
    UNION ALL
    SELECT chosen_sessions.session_id, answers.model, answers.variant, answers.served_at
    FROM chosen_sessions
    JOIN answers
      ON NOT answers.known_session
     AND answers.customer_id = chosen_sessions.customer_id
     AND answers.served_at >= chosen_sessions.started_at - INTERVAL '{session_gap_minutes} minutes'
     AND answers.served_at <= chosen_sessions.ended_at
),
session_variants AS (
    SELECT session_id, model, MIN_BY(variant, served_at) AS variant
    FROM matched
    GROUP BY session_id, model
),
session_orders AS (
    SELECT chosen_sessions.session_id, COUNT(*) AS orders, SUM(orders.revenue) AS revenue
    FROM orders
    JOIN chosen_sessions
      ON orders.customer_id = chosen_sessions.customer_id
     AND orders.order_time BETWEEN chosen_sessions.started_at AND chosen_sessions.ended_at
    GROUP BY chosen_sessions.session_id
)
SELECT
    chosen_sessions.day,
    session_variants.model,
    COALESCE(session_variants.variant, '') AS variant,
    COUNT(*) AS sessions,
    COUNT(*) FILTER (WHERE chosen_sessions.purchased) AS converted_sessions,
    COALESCE(SUM(session_orders.orders), 0) AS orders,
    COALESCE(SUM(session_orders.revenue), 0) AS revenue
FROM session_variants
JOIN chosen_sessions USING (session_id)
LEFT JOIN session_orders USING (session_id)
GROUP BY ALL
ORDER BY 1, 2, 3;
