-- The attribution of an experiment's outcomes to its units (tailor.experiments.attribution).
-- Input relations (views or registered tables the caller provides):
--   exposure_rows(exposure_id, customer_id, variant, served_at, session_id, fallback,
--                 latency_ms)
--       one row per exposure: a prediction-log answer, or a campaign mail sent;
--   event_rows(customer_id, event_type, product_id, "timestamp", session_id, price,
--       quantity, order_id, properties)    the events (lake, plus the store's newest);
--   exposure_slates(exposure_id, slate)    the product ids each exposure showed (a list).
-- Placeholders (in braces) formatted in by the caller from numbers and a timestamp it built,
-- never from user text: as_of, window_micros, pre_period_micros; the unit ids are carried
-- only when asked for (unit_id_column, unit_id_aggregate, unit_id), else the unit's hash
-- stands in.
-- Statements are separated by a line holding only ';' .

-- A known customer's first anonymous id (tailor.js sends it with every event, `identify()`
-- included): both ids are one person, whose unit is the anonymous id, as the assignment's
-- (the browser's anonymous id when the request carries it, else the customer id).
CREATE OR REPLACE TEMP TABLE identity_link AS
SELECT customer_id, arg_min(anonymous_id, "timestamp") AS anonymous_id
FROM (
    SELECT customer_id, "timestamp",
           TRY(json_extract_string(properties, '$.anonymous_id')) AS anonymous_id
    FROM event_rows
    WHERE properties LIKE '%anonymous_id%' AND customer_id NOT LIKE 'anon-%'
      AND "timestamp" < {as_of}
)
WHERE anonymous_id IS NOT NULL AND anonymous_id <> customer_id
GROUP BY customer_id
;
-- The variants as an enumeration: compared as numbers below, and handed to pandas as a
-- Categorical rather than as millions of strings.
DROP TYPE IF EXISTS exposure_variant
;
CREATE TYPE exposure_variant AS ENUM (
    SELECT DISTINCT variant FROM exposure_rows WHERE variant IS NOT NULL ORDER BY variant)
;
-- Each exposure under its unit: the unit id, as a 64-bit hash (`unit_key`: the joins below
-- run on numbers; two units in 10 million share one with a chance of about 1 in 300,000).
CREATE OR REPLACE TEMP TABLE exposure AS
SELECT x.exposure_id, hash(COALESCE(l.anonymous_id, x.customer_id)) AS unit_key,
       {unit_id_column}CAST(x.variant AS exposure_variant) AS variant, x.served_at,
       CASE WHEN x.session_id IS NOT NULL THEN hash(x.session_id) END AS session_key,
       COALESCE(x.fallback, false) AS fallback, x.latency_ms
FROM exposure_rows x LEFT JOIN identity_link l ON l.customer_id = x.customer_id
WHERE x.customer_id IS NOT NULL AND x.variant IS NOT NULL AND x.served_at < {as_of}
;
-- A unit's variant is the one of its first exposure; `variants` is 2 for a unit seen in
-- more than one (its id changed between assignments), else 1.
CREATE OR REPLACE TEMP TABLE unit AS
SELECT unit_key, {unit_id_aggregate}arg_min(variant, served_at) AS variant,
       MIN(served_at) AS first_exposure, COUNT(*) AS exposures,
       CASE WHEN MIN(variant) = MAX(variant) THEN 1 ELSE 2 END AS variants
FROM exposure
GROUP BY unit_key
;
-- The exposed units' events from the earliest pre-period on, under their unit.
CREATE OR REPLACE TEMP TABLE unit_event AS
SELECT u.unit_key, u.first_exposure, v.event_type, v.product_id, v."timestamp",
       CASE WHEN v.session_id IS NOT NULL THEN hash(v.session_id) END AS session_key,
       CASE WHEN v.event_type = 'purchase'
            THEN COALESCE(v.price, 0) * COALESCE(v.quantity, 1) END AS amount,
       CASE WHEN v.event_type = 'purchase'
            THEN COALESCE(v.order_id, 'derived:' || v.customer_id || ':'
                 || COALESCE(v.session_id, CAST(CAST(v."timestamp" AS DATE) AS VARCHAR))) END
           AS order_key,
       CASE WHEN v.event_type = 'email_click'
            THEN TRY(json_extract_string(v.properties, '$.campaign')) || ':'
                 || TRY(json_extract_string(v.properties, '$.mail')) END AS mail_key
FROM event_rows v
LEFT JOIN identity_link l ON l.customer_id = v.customer_id
JOIN unit u ON u.unit_key = hash(COALESCE(l.anonymous_id, v.customer_id))
WHERE v."timestamp" < {as_of}
  AND v."timestamp" >= u.first_exposure - to_microseconds({pre_period_micros})
;
-- Each event after an exposure, with the latest exposure at or before it, kept when it
-- falls within the window after that exposure: [served_at, served_at + window).
CREATE OR REPLACE TEMP TABLE attributed AS
SELECT e.unit_key, e.event_type, e.product_id, e.amount, e.order_key, e.mail_key,
       x.exposure_id
FROM (SELECT * FROM unit_event
      WHERE "timestamp" >= first_exposure    -- page views count only in the bounce, below
        AND event_type IN ('purchase', 'email_click', 'click', 'product_view')) e
ASOF JOIN exposure x ON x.unit_key = e.unit_key AND e."timestamp" >= x.served_at
WHERE e."timestamp" < x.served_at + to_microseconds({window_micros})
;
CREATE OR REPLACE TEMP TABLE outcome AS
SELECT unit_key,
       BOOL_OR(event_type = 'purchase') AS converted,
       COUNT(DISTINCT order_key) AS orders,
       COALESCE(SUM(amount), 0) AS revenue,
       COUNT(DISTINCT mail_key) AS clicked_mails
FROM attributed
WHERE event_type IN ('purchase', 'email_click')
GROUP BY unit_key
;
-- Clicks and product views of a product the exposure before them showed.
CREATE OR REPLACE TEMP TABLE slate_click AS
SELECT a.unit_key, COUNT(*) AS clicks
FROM (SELECT unit_key, exposure_id, product_id FROM attributed
      WHERE event_type IN ('click', 'product_view') AND product_id IS NOT NULL) a
JOIN exposure_slates s ON s.exposure_id = a.exposure_id
WHERE list_contains(s.slate, a.product_id)
GROUP BY a.unit_key
;
-- Bounce: a session in which the unit was exposed (the exposure's session id, compared by
-- its 64-bit hash) whose events, all of them, are a single page view (page_view or
-- product_view); sessions with no event at all are not observed and not counted.
CREATE OR REPLACE TEMP TABLE session_bounce AS
SELECT unit_key, COUNT(*) AS sessions,
       COUNT(*) FILTER (WHERE events = 1 AND views = 1) AS bounced_sessions
FROM (SELECT e.unit_key, e.session_key, COUNT(*) AS events,
             COUNT(*) FILTER (WHERE e.event_type IN ('page_view', 'product_view')) AS views
      FROM unit_event e
      SEMI JOIN (SELECT unit_key, session_key FROM exposure WHERE session_key IS NOT NULL) s
        ON s.unit_key = e.unit_key AND s.session_key = e.session_key
      GROUP BY e.unit_key, e.session_key)
GROUP BY unit_key
;
-- The pre-period: purchases in the days before the first exposure that unit_event holds (CUPED).
CREATE OR REPLACE TEMP TABLE pre_period AS
SELECT unit_key, SUM(amount) AS pre_revenue, true AS pre_converted
FROM unit_event
WHERE event_type = 'purchase' AND "timestamp" < first_exposure
GROUP BY unit_key
;
SELECT {unit_id} AS unit_id, u.variant, u.first_exposure, u.exposures, u.variants,
       COALESCE(o.converted, false) AS converted,
       COALESCE(o.orders, 0) AS orders,
       COALESCE(o.revenue, 0.0) AS revenue,
       COALESCE(c.clicks, 0) AS clicks,
       COALESCE(o.clicked_mails, 0) AS clicked_mails,
       COALESCE(b.sessions, 0) AS sessions,
       COALESCE(b.bounced_sessions, 0) AS bounced_sessions,
       COALESCE(p.pre_revenue, 0.0) AS pre_revenue,
       COALESCE(p.pre_converted, false) AS pre_converted
FROM unit u
LEFT JOIN outcome o USING (unit_key)
LEFT JOIN slate_click c USING (unit_key)
LEFT JOIN session_bounce b USING (unit_key)
LEFT JOIN pre_period p USING (unit_key)
;
