#!/usr/bin/env python3
"""Dev links for `klynge eval-links`: Apple's published suppliers (shared/data/supply) matched by
name to firms of the catalogue (shared/data/firms). Writes `customer,supplier` id pairs, Apple
(`APC.BE`) the customer. Names are compared after lower-casing, dropping punctuation and legal or
generic suffixes; a supplier name matches a catalogue firm when the normalised names are equal.
Every match is printed to stderr to be checked by hand. Dev only: check with it, never fit on it.

usage: apple_links.py OUT.csv"""
import csv, gzip, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KLYNGE_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
SUFFIXES = {"inc", "incorporated", "co", "corp", "corporation", "company", "ltd", "limited", "plc", "ag", "sa",
            "nv", "se", "gmbh", "kk", "bhd", "berhad", "holdings", "holding", "group", "the", "spa", "asa", "ab",
            "llc", "lp", "tbk", "pt", "pcl", "public", "oyj", "kgaa", "cv", "bv", "kabushiki", "kaisha",
            "aktiengesellschaft", "and"}
# Supplier names whose only catalogue match is another company (checked by hand).
WRONG = {"Delta Group", "Furukawa"}
# Spellings of one word.
SAME = {"mfg": "manufacturing", "intl": "international", "elec": "electric"}


def norm(name):
    words = [SAME.get(w, w) for w in re.sub(r"[^a-z0-9 ]", " ", name.lower().replace("&", " and ")).split()]
    while words and words[-1] in SUFFIXES:
        words.pop()
    words = [w for w in words if w not in {"the"}]
    return " ".join(words)


firms = {}
with gzip.open(os.path.join(DATA, "firms", "firms.jsonl.gz"), "rt") as f:
    for line in f:
        r = json.loads(line)
        key = norm(r["name"])
        if len(key) >= 4:
            firms.setdefault(key, []).append(r)
pairs = set()
with open(os.path.join(DATA, "supply", "apple_suppliers.csv")) as f:
    for row in csv.DictReader(f):
        key = norm(row["supplier_name"])
        if len(key) < 4 or row["supplier_name"].strip() in WRONG:
            continue
        for firm in firms.get(key, []):
            pid = re.sub(r"[^A-Za-z0-9._:-]", "-", firm["id"])[:128]
            if pid != "APC.BE" and pid not in {p for _, p in pairs}:
                print(f"{row['supplier_name']!r:45} -> {pid:12} {firm['name']} ({firm.get('country')})", file=sys.stderr)
            pairs.add(("APC.BE", pid))
with open(sys.argv[1], "w") as g:
    g.write("customer,supplier\n")
    for customer, supplier in sorted(pairs):
        g.write(f"{customer},{supplier}\n")
print(f"{len(pairs)} links written to {sys.argv[1]}", file=sys.stderr)
