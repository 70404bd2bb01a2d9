#!/usr/bin/env python3
"""Dev links for `klynge eval-links`: firm-to-firm links the firm catalogue states itself. A link is a
sentence of one firm's description that names another catalogue firm after a word of trade or
cooperation ("has a collaboration agreement with Kaken Pharmaceutical", "distributes Oracle
products", "supply agreement with Tilray"). Sentences about ownership or history (subsidiary,
acquired, formerly, joint venture, stake...) are skipped, as are names that are also ordinary words
or places ("Kingdom", "Israel", "Midland") and a firm's other listings (same website or name).
Ids are those of `firms_to_profiles.py`. Writes `customer,supplier` id pairs (the describing firm
first; most links are partnerships, so read them as undirected). Deterministic.

Data: shared/data/firms (JerBouma/FinanceDatabase, MIT licence, (c) 2023 Jeroen Bouma). Dev only:
check with it, never fit on it. About half the links are pharmaceutical licensing and
collaboration deals, so it says more about partners than about suppliers.

usage: mine_links.py OUT.csv"""
import collections
import gzip
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KLYNGE_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

SUFFIX = re.compile(
    r"(,?\s+(inc|incorporated|corp|corporation|co|company|ltd|limited|plc|ag|se|sa|s\.a|n\.v|nv|ab|asa|oyj|spa"
    r"|s\.p\.a|gmbh|holdings?|group|llc|lp|bhd|berhad|tbk|pt|pcl|public company limited|co\.,? ltd|\(publ\))\.?)+$",
    re.I,
)
TRADE = re.compile(
    r"\b(customers?|clients?|suppl(y|ies|ier|iers|ying)|distribut\w*|partner\w*|collaborat\w*|alliance|agreements?"
    r"|contracts?|licen[cs]\w*|co-develop\w*|manufactur\w* for|provides? \w+ to|sells? \w+ to|OEM)\b",
    re.I,
)
NOT_TRADE = re.compile(
    r"\b(subsidiary|subsidiaries|formerly|acquired|acquisition|merger|merged|spun|spin-?off|owned|parent|division of"
    r"|affiliate|renamed|changed its name|known as|listed|shareholder|stake|investment|joint venture|property|claims?"
    r"|located)\b",
    re.I,
)
PLACE_BEFORE = {"in", "of", "from", "across", "throughout", "to", "United", "New", "North", "South", "East", "West",
                "Northern", "Southern", "Eastern", "Western", "Central", "and", "the"}
words = lambda s: re.findall(r"[A-Za-z0-9&'\-]+", s)


def core(name):
    previous = None
    name = name.strip()
    while previous != name:
        previous, name = name, SUFFIX.sub("", name).strip(" ,.")
    return name


def domain(url):
    return re.sub(r"^(https?://)?(www\.)?", "", url.lower()).split("/")[0] if url else None


def main(out):
    source = os.path.join(DATA, "firms", "firms.jsonl.gz")
    if not os.path.exists(source):
        sys.exit(f"no firm catalogue at {source}: set KLYNGE_SHARED_DATA to the shared data directory")
    profiles = []
    with gzip.open(source, "rt", encoding="utf-8") as f:
        for line in f:
            firm = json.loads(line)
            # The profile id firms_to_profiles.py gives the firm.
            firm["id"] = re.sub(r"[^A-Za-z0-9._:-]", "-", firm["id"])[:128]
            profiles.append(firm)
    lower = collections.Counter()  # in how many descriptions a word is written in lower case
    for p in profiles:
        lower.update({w for w in words(p["description"]) if w.islower()})
    names = collections.defaultdict(list)
    for p in profiles:
        key = tuple(words(core(p["name"])))
        if not key:
            continue
        if len(key) == 1 and (len(key[0]) < 5 or not key[0][0].isupper() or lower[key[0].lower()] > 3):
            continue
        if all(lower[w.lower()] > 50 for w in key):  # "Capital Limited", "Enterprise Group"
            continue
        names[key].append(p["id"])
    keys = {k: v[0] for k, v in names.items() if len(v) == 1}
    longest = max(map(len, keys))
    by_id = {p["id"]: p for p in profiles}
    links = set()
    for p in profiles:
        own = set(words(core(p["name"])))
        for sentence in re.split(r"(?<=[.;])\s+", p["description"]):
            if not TRADE.search(sentence) or NOT_TRADE.search(sentence):
                continue
            t = words(sentence)
            for i in range(len(t)):
                for n in range(min(longest, len(t) - i), 0, -1):
                    key = tuple(t[i:i + n])
                    other = keys.get(key)
                    if other is None:
                        continue
                    o = by_id[other]
                    same_site = domain(o.get("website")) and domain(o.get("website")) == domain(p.get("website"))
                    same_name = core(o["name"]).lower() == core(p["name"]).lower()
                    placed = n == 1 and i > 0 and t[i - 1] in PLACE_BEFORE
                    traded = TRADE.search(" ".join(t[max(0, i - 15):i]))
                    if other != p["id"] and not set(key) <= own and not same_site and not same_name and not placed and traded:
                        if (other, p["id"]) not in links:
                            links.add((p["id"], other))
                    break
    with open(out, "w", encoding="utf-8") as f:
        f.write("customer,supplier\n")
        for a, b in sorted(links):
            f.write(f"{a},{b}\n")
    print(f"{len(links)} links among {len({m for pair in links for m in pair})} firms written to {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
