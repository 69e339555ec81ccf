-- The catalogue with each product's price tier inside its category.
-- Tiers are price terciles per category (NTILE(3) over price, ties broken by id):
-- 0 low, 1 medium, 2 high; products without a price have no tier.
-- season_expression reads the season from the catalogue's extra JSON when it has one.
WITH catalogue AS (
    SELECT
        product_id,
        COALESCE(category, 'unknown') AS category,
        price,
        rating,
        inventory,
        COALESCE(seasonal, false) AS seasonal,
        {season_expression} AS season
    FROM products
    WHERE product_id IS NOT NULL
),
tiers AS (
    SELECT
        product_id,
        NTILE(3) OVER (PARTITION BY category ORDER BY price, product_id) - 1 AS price_tier_index
    FROM catalogue
    WHERE price IS NOT NULL
)
SELECT catalogue.*, tiers.price_tier_index
FROM catalogue
LEFT JOIN tiers USING (product_id);
