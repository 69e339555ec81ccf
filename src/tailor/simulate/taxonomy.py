"""The shop's fixed vocabulary: categories, subcategories, complements, regions, devices, names.

Plain constants, no I/O. Prices are medians of a log-normal per subcategory (so each
category gets its own price level); `season` marks seasonal demand; grocery is
consumable (re-bought).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subcategory:
    """One kind of product: its category, price level, product-name variants and season."""

    name: str
    category: str
    median_price: float
    variants: tuple[str, ...]
    season: str | None = None
    weight: float = 1.0  # relative share of the catalogue


def _sub(category: str, name: str, price: float, variants: str, season: str | None = None,
         weight: float = 1.0) -> Subcategory:
    return Subcategory(name, category, price, tuple(variants.split("|")), season, weight)


SUBCATEGORIES: tuple[Subcategory, ...] = (
    _sub("electronics", "laptop", 899, "Laptop 13in|Laptop 14in|Laptop 15in|Laptop 16in",
         weight=1.5),
    _sub("electronics", "mouse", 24, "Wireless Mouse|Gaming Mouse|Ergonomic Mouse"),
    _sub("electronics", "keyboard", 49, "Mechanical Keyboard|Wireless Keyboard|Compact Keyboard"),
    _sub("electronics", "monitor", 219, "Monitor 24in|Monitor 27in|Monitor 32in"),
    _sub("electronics", "laptop bag", 45, "Laptop Bag|Laptop Sleeve|Laptop Backpack"),
    _sub("electronics", "smartphone", 549, "Smartphone 6.1in|Smartphone 6.7in", weight=1.5),
    _sub("electronics", "phone case", 19, "Phone Case|Rugged Phone Case|Wallet Phone Case"),
    _sub("electronics", "charger", 25, "USB-C Charger|Fast Charger|Power Bank"),
    _sub("electronics", "headphones", 89, "Over-Ear Headphones|Wireless Earbuds|Sport Earbuds"),
    _sub("electronics", "camera", 649, "Mirrorless Camera|Compact Camera|Action Camera"),
    _sub("electronics", "memory card", 22, "Memory Card 64GB|Memory Card 128GB|Memory Card 256GB"),
    _sub("electronics", "tripod", 39, "Travel Tripod|Studio Tripod"),
    _sub("clothing", "jeans", 59, "Slim Jeans|Straight Jeans|Relaxed Jeans", weight=1.5),
    _sub("clothing", "t-shirt", 19, "Cotton T-Shirt|Graphic T-Shirt|V-Neck T-Shirt", weight=2.0),
    _sub("clothing", "dress", 69, "Summer Dress|Wrap Dress|Midi Dress", weight=1.5),
    _sub("clothing", "sneakers", 85, "Canvas Sneakers|Leather Sneakers|Court Sneakers"),
    _sub("clothing", "winter coat", 149, "Down Jacket|Wool Coat|Parka", season="winter"),
    _sub("clothing", "swimwear", 35, "Swim Shorts|Swimsuit|Bikini Set", season="summer"),
    _sub("clothing", "suit", 299, "Slim Suit|Classic Suit|Linen Suit"),
    _sub("clothing", "shirt", 45, "Oxford Shirt|Dress Shirt|Flannel Shirt"),
    _sub("clothing", "tie", 29, "Silk Tie|Knit Tie|Bow Tie"),
    _sub("clothing", "socks", 9, "Sport Socks 3-Pack|Wool Socks|Ankle Socks 5-Pack"),
    _sub("home", "coffee maker", 79, "Drip Coffee Maker|Espresso Machine|French Press"),
    _sub("home", "mug set", 24, "Ceramic Mug Set|Travel Mug|Glass Mug Set"),
    _sub("home", "bed sheets", 49, "Cotton Bed Sheets|Linen Bed Sheets|Flannel Bed Sheets"),
    _sub("home", "mattress", 499, "Foam Mattress|Spring Mattress|Hybrid Mattress"),
    _sub("home", "bed frame", 349, "Wooden Bed Frame|Metal Bed Frame|Upholstered Bed Frame"),
    _sub("home", "lamp", 39, "Desk Lamp|Floor Lamp|Bedside Lamp"),
    _sub("home", "cookware set", 119, "Non-Stick Pan Set|Stainless Pot Set|Cast Iron Skillet"),
    _sub("home", "garden furniture", 249, "Garden Chair Set|Patio Table|Sun Lounger",
         season="summer"),
    _sub("home", "christmas lights", 25, "LED String Lights|Outdoor Fairy Lights",
         season="holiday"),
    _sub("home", "vacuum cleaner", 179, "Cordless Vacuum|Robot Vacuum|Bagless Vacuum"),
    _sub("books", "novel", 14, "Mystery Novel|Fantasy Novel|Romance Novel|Thriller Novel",
         weight=3.0),
    _sub("books", "cookbook", 24, "Italian Cookbook|Vegan Cookbook|Baking Cookbook"),
    _sub("books", "children's book", 9, "Picture Book|Bedtime Stories|Early Reader", weight=1.5),
    _sub("books", "biography", 18, "Biography|Memoir"),
    _sub("books", "science book", 22, "Popular Science Book|Astronomy Book|History of Science"),
    _sub("books", "travel guide", 19, "City Travel Guide|Hiking Guide|Country Travel Guide",
         season="summer"),
    _sub("sports", "bicycle", 499, "City Bicycle|Mountain Bike|Road Bike"),
    _sub("sports", "bike helmet", 49, "Bike Helmet|MTB Helmet"),
    _sub("sports", "bike lock", 29, "U-Lock|Chain Lock|Folding Lock"),
    _sub("sports", "tennis racket", 99, "Tennis Racket|Junior Tennis Racket"),
    _sub("sports", "tennis balls", 8, "Tennis Balls 3-Pack|Tennis Balls 4-Pack"),
    _sub("sports", "yoga mat", 25, "Yoga Mat|Travel Yoga Mat|Cork Yoga Mat"),
    _sub("sports", "running shoes", 110, "Road Running Shoes|Trail Running Shoes"),
    _sub("sports", "ski jacket", 189, "Ski Jacket|Snowboard Jacket", season="winter"),
    _sub("sports", "dumbbells", 45, "Dumbbell Pair|Adjustable Dumbbell|Kettlebell"),
    _sub("beauty", "shampoo", 9, "Herbal Shampoo|Volume Shampoo|Anti-Dandruff Shampoo"),
    _sub("beauty", "conditioner", 9, "Herbal Conditioner|Repair Conditioner"),
    _sub("beauty", "face cream", 29, "Day Cream|Night Cream|Moisturiser"),
    _sub("beauty", "sunscreen", 14, "Sunscreen SPF30|Sunscreen SPF50", season="summer"),
    _sub("beauty", "perfume", 65, "Eau de Parfum|Eau de Toilette"),
    _sub("beauty", "makeup kit", 35, "Makeup Palette|Lipstick Set|Brush Set"),
    _sub("beauty", "lip balm", 5, "Lip Balm|Tinted Lip Balm"),
    _sub("toys", "building blocks", 39, "Building Blocks Set|Brick Castle|Brick Spaceship"),
    _sub("toys", "board game", 29, "Strategy Board Game|Family Board Game|Party Game"),
    _sub("toys", "doll", 24, "Fashion Doll|Baby Doll|Doll House"),
    _sub("toys", "puzzle", 17, "Jigsaw Puzzle 1000pc|Jigsaw Puzzle 500pc|3D Puzzle"),
    _sub("toys", "game console", 399, "Game Console|Handheld Console"),
    _sub("toys", "game controller", 59, "Wireless Controller|Pro Controller"),
    _sub("toys", "video game", 49, "Adventure Game|Racing Game|Sports Game", weight=1.5),
    _sub("toys", "advent calendar", 29, "Toy Advent Calendar|Chocolate Advent Calendar",
         season="holiday"),
    _sub("grocery", "coffee beans", 12, "Espresso Beans|Filter Coffee|Decaf Beans"),
    _sub("grocery", "pasta", 3, "Spaghetti|Penne|Fusilli"),
    _sub("grocery", "pasta sauce", 4, "Tomato Sauce|Pesto|Arrabbiata Sauce"),
    _sub("grocery", "tea", 6, "Green Tea|Black Tea|Herbal Tea"),
    _sub("grocery", "olive oil", 10, "Extra Virgin Olive Oil|Olive Oil"),
    _sub("grocery", "snacks", 4, "Salted Nuts|Crisps|Granola Bars"),
    _sub("grocery", "breakfast cereal", 5, "Muesli|Corn Flakes|Oat Porridge"),
    _sub("grocery", "chocolate", 3, "Dark Chocolate|Milk Chocolate|Hazelnut Chocolate"),
)

CATEGORIES: tuple[str, ...] = (
    "electronics", "clothing", "home", "books", "sports", "beauty", "toys", "grocery",
)
# Share of attention the average customer gives each category (Dirichlet base measure).
CATEGORY_SHARES: tuple[float, ...] = (0.18, 0.18, 0.14, 0.10, 0.10, 0.10, 0.08, 0.12)
CONSUMABLE_CATEGORIES: frozenset[str] = frozenset({"grocery"})

# Anchor subcategory -> (complement subcategory, probability the complement is added to
# the cart with the anchor). Each anchor product gets one designated complement product
# per rule ("fits this laptop"), so rules are learnable at product level.
COMPLEMENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "laptop": (("mouse", 0.70), ("keyboard", 0.70), ("laptop bag", 0.40), ("monitor", 0.20)),
    "smartphone": (("phone case", 0.60), ("charger", 0.35), ("headphones", 0.15)),
    "camera": (("memory card", 0.60), ("tripod", 0.25)),
    "suit": (("shirt", 0.50), ("tie", 0.35)),
    "jeans": (("t-shirt", 0.30),),
    "running shoes": (("socks", 0.30),),
    "coffee maker": (("coffee beans", 0.50), ("mug set", 0.30)),
    "bed frame": (("mattress", 0.45), ("bed sheets", 0.40)),
    "cookbook": (("olive oil", 0.20),),
    "bicycle": (("bike helmet", 0.60), ("bike lock", 0.45)),
    "tennis racket": (("tennis balls", 0.65),),
    "shampoo": (("conditioner", 0.55),),
    "game console": (("game controller", 0.60), ("video game", 0.70)),
    "pasta": (("pasta sauce", 0.60),),
}

# Day of the year when a season's demand peaks.
SEASON_PEAK_DAY: dict[str, int] = {"winter": 15, "spring": 105, "summer": 196, "autumn": 288,
                                   "holiday": 344}

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
REGION_SHARES: tuple[float, ...] = (0.18, 0.24, 0.16, 0.22, 0.20)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
DEVICE_SHARES: tuple[float, ...] = (0.60, 0.30, 0.10)

INCENTIVES: tuple[str, ...] = ("none", "10_off", "free_shipping")
ABANDON_CAUSES: tuple[str, ...] = (
    "price", "shipping_cost", "device_friction", "distraction", "comparison_shopping",
)
FREE_SHIPPING_THRESHOLD = 49.0  # carts below this pay shipping, a classic abandonment cause
SHIPPING_COST = 5.99

FIRST_NAMES: tuple[str, ...] = (
    "anna", "ben", "clara", "david", "emma", "felix", "greta", "hugo", "ida", "jonas", "karla",
    "leon", "mia", "noah", "olga", "paul", "quinn", "rosa", "sam", "tara", "uwe", "vera",
    "will", "xenia", "yusuf", "zoe", "maria", "omar", "lena", "tom",
)
LAST_NAMES: tuple[str, ...] = (
    "keller", "smith", "novak", "garcia", "jensen", "rossi", "dubois", "kowalski", "murphy",
    "silva", "nakamura", "berg", "fischer", "lopez", "martin", "olsen", "petrov", "weber",
    "young", "ahmed",
)
