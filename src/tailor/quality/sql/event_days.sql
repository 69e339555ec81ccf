-- Stored events per UTC day of their timestamp (the volume rule's series), oldest first.
SELECT CAST(timestamp AS DATE) AS day, COUNT(*) AS events
FROM events
GROUP BY CAST(timestamp AS DATE)
ORDER BY day
