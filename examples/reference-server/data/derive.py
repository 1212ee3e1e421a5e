"""Derives the reference server's demo catalog and baskets from UCI Online Retail.

Source: Chen, D. (2015), Online Retail, UCI Machine Learning Repository, CC BY 4.0.
Run from this folder: python3 derive.py ../../../../shared/data/online-retail/online_retail_2011.tsv.gz
It writes products.tsv (the most-sold stock codes, their most frequent title and price, a
category and a collection derived from the title's words) and baskets.tsv (invoices restricted
to those products, for the "bought together" lists). Deterministic: same input, same output.
"""
import collections, gzip, re, sys

PRODUCTS = 3000
BASKETS = 6000
NOT_PRODUCTS = {"POST", "DOT", "M", "C2", "BANK CHARGES", "PADS", "AMAZONFEE", "S", "D", "CRUK", "B"}
# Category by the first keyword found in the title (order matters: specific before general).
CATEGORIES = [
    ("Kitchen/Mugs", ["MUG", "CUP"]), ("Kitchen/Baking", ["CAKE", "BAKING", "CUPCAKE", "JELLY MOULD", "COOKIE"]),
    ("Kitchen/Tableware", ["PLATE", "BOWL", "TEAPOT", "TEA TOWEL", "NAPKIN", "CUTLERY", "JUG", "TRAY", "COASTER"]),
    ("Kitchen/Storage", ["TIN", "JAR", "BOTTLE", "LUNCH BOX", "BOX"]),
    ("Bags", ["BAG", "PURSE", "CHARLIE", "SHOPPER"]),
    ("Stationery/Cards", ["CARD", "WRAP", "ENVELOPE"]), ("Stationery", ["NOTEBOOK", "PENCIL", "PEN ", "STICKER", "CALENDAR", "BOOK", "ERASER"]),
    ("Home/Lighting", ["LIGHT", "LANTERN", "CANDLE", "LAMP", "T-LIGHT", "NIGHT LIGHT"]),
    ("Home/Decoration", ["HEART", "DECORATION", "BUNTING", "GARLAND", "WREATH", "SIGN", "FRAME", "CLOCK", "MIRROR", "HOOK", "HANGER", "DOORSTOP", "CUSHION", "ORNAMENT"]),
    ("Toys", ["TOY", "DOLL", "GAME", "PUZZLE", "SKITTLES", "SPACEBOY", "PLAYHOUSE", "BALLOON"]),
    ("Garden", ["GARDEN", "PLANT", "FLOWER POT", "WATERING", "BIRD"]),
    ("Christmas", ["CHRISTMAS", "ADVENT", "SANTA", "TREE", "SNOWFLAKE", "REINDEER"]),
    ("Party", ["PARTY", "CONFETTI", "PAPER CHAIN", "PAPER CUPS", "STRAWS"]),
]
# Collections: product lines the shop sells under one design name; they serve as the brand facet.
COLLECTIONS = ["RETROSPOT", "REGENCY", "DOLLY GIRL", "SPACEBOY", "VINTAGE", "WOODLAND", "JAM MAKING",
               "PAISLEY", "SKULL", "POPPY", "CHARLOTTE", "SUKI", "LOVE", "FAIRY CAKE", "BAROQUE", "ENGLISH ROSE",
               "BLUE POLKADOT", "PINK POLKADOT", "RABBIT", "OWL", "ZINC", "ANTIQUE", "SWEETHEART"]

def category(title):
    for path, words in CATEGORIES:
        padded = " " + re.sub(r"[^A-Z0-9-]+", " ", title) + " "
        if any(" " + w.strip() + " " in padded or " " + w.strip() + "S " in padded for w in words):
            return path
    return "Gifts"

def collection(title):
    for c in COLLECTIONS:
        if c in title:
            return c.title()
    return "Shop Originals"

def main(path):
    sold = collections.Counter()
    titles = collections.defaultdict(collections.Counter)
    prices = collections.defaultdict(collections.Counter)
    invoices = collections.defaultdict(set)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            inv, code, desc, qty, _date, price, _cust, _country = line.rstrip("\n").split("\t")
            if code in NOT_PRODUCTS or not desc.strip() or float(price) <= 0:
                continue
            sold[code] += int(qty)
            titles[code][desc.strip()] += 1
            prices[code][price] += 1
            invoices[inv].add(code)
    chosen = [c for c, _ in sorted(sold.items(), key=lambda kv: (-kv[1], kv[0]))[:PRODUCTS]]
    keep = set(chosen)
    with open("products.tsv", "w", encoding="utf-8") as out:
        out.write("sku\ttitle\tprice_gbp\tcategory\tcollection\tunits_sold_2011\n")
        for code in sorted(chosen):
            title = titles[code].most_common(1)[0][0]
            price = prices[code].most_common(1)[0][0]
            price = "%.2f" % float(price)
            out.write(f"{code}\t{title.title()}\t{price}\t{category(title)}\t{collection(title)}\t{sold[code]}\n")
    baskets = []
    for inv in sorted(invoices):
        items = sorted(invoices[inv] & keep)
        if 2 <= len(items) <= 40:
            baskets.append((inv, items))
    step = max(1, len(baskets) // BASKETS)
    with open("baskets.tsv", "w", encoding="utf-8") as out:
        out.write("invoice\tskus\n")
        for inv, items in baskets[::step][:BASKETS]:
            out.write(inv + "\t" + " ".join(items) + "\n")

if __name__ == "__main__":
    main(sys.argv[1])
