-- Catalogue attributes per product. The lake keeps only the newest catalogue, so there
-- is no history to be point-in-time about: each product gets the same row twice, at
-- the first snapshot (first_bucket, so training rows find it) and at the newest
-- (horizon_bucket, so every run materializes the current catalogue).
SELECT
    p.product_id,
    {sql.timestamp_from_seconds:stamp.bucket * {bucket_seconds}} AS event_timestamp,
    p.category AS product_category,
    COALESCE(p.price, 0.0) AS product_price,
    CASE p.price_tier_index WHEN 0 THEN 'low' WHEN 1 THEN 'medium' WHEN 2 THEN 'high'
         ELSE 'unknown' END AS product_price_tier,
    COALESCE(p.rating, 0.0) AS product_rating,
    COALESCE(p.inventory > 0, true) AS product_in_stock,
    CAST(COALESCE(p.inventory, 0) AS BIGINT) AS product_inventory,
    p.seasonal AS product_is_seasonal,
    COALESCE(p.season, 'none') AS product_season
FROM product_tiers AS p
CROSS JOIN (SELECT {first_bucket} AS bucket UNION SELECT {horizon_bucket}) AS stamp
