-- The prediction log per UTC day and endpoint from $first_day to $last_day: answers served,
-- how many were fallbacks (popularity lists or no offer, with a reason) and how many were
-- built on stale features.
SELECT
    CAST(served_at AS DATE) AS day,
    endpoint,
    COUNT(*) AS answers,
    COUNT(*) FILTER (WHERE fallback) AS fallbacks,
    COUNT(*) FILTER (WHERE stale) AS stale
FROM predictions
WHERE CAST(served_at AS DATE) BETWEEN $first_day AND $last_day
GROUP BY ALL
ORDER BY 1, 2;
