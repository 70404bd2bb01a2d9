#!/usr/bin/env python3
"""How far can any re-ranking of these candidates go on the dev consortia?

An upper-bound study for issues 13 and 15, not a model klynge ships: a gradient-boosted
classifier (and a logistic regression) is fitted *on the dev queries' own answers*, with
5-fold cross-validation grouped by query, over every per-candidate feature these data
offer: query-text and group-text TF-IDF cosines, ties and shared partners with the group,
whether the candidate worked with two group members in one project, how like the query
its past projects are, same call topic or topic family, same country, city or NUTS-2,
kind, SME flag, experience; and, when given, klynge's own rank (`--klynge PRED`, the
`--predictions` file of `klynge eval`). The network of each query is its top `size - 1 - L`
by the fitted score, then again after a second stage that adds set-level features (ties
and shared partners with the other members of the first-stage network); the precision is what `klynge eval --lock L` reports. Because the
fit sees the dev answers, the figures are optimistic ceilings for a pointwise ranker
built on these features.

    pip install numpy scipy scikit-learn
    python3 scripts/ceiling_study.py --lock 0 --klynge /tmp/pred0.jsonl
    python3 scripts/ceiling_study.py --lock 2

Reads ../shared/data/consortia (override with KLYNGE_SHARED_DATA); about a minute a run.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KLYNGE_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
KINDS = ["company", "university", "research", "public", "other"]


def read(name):
    path = os.path.join(DATA, "consortia", name)
    if not os.path.exists(path):
        sys.exit(f"{path} not found: set KLYNGE_SHARED_DATA to the shared data directory")
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock", type=int, default=0)
    ap.add_argument("--klynge", help="klynge eval --predictions file (adds klynge's rank as a feature)")
    args = ap.parse_args()
    orgs, colls, queries = read("orgs.jsonl"), read("collaborations.jsonl"), read("queries-dev.jsonl")
    idx = {o["id"]: i for i, o in enumerate(orgs)}
    n_orgs = len(orgs)
    members = [[idx[m] for m in c["members"]] for c in colls]
    ties = np.zeros((n_orgs, n_orgs), np.float32)
    org_colls = collections.defaultdict(list)
    for ci, ms in enumerate(members):
        for a in ms:
            org_colls[a].append(ci)
            for b in ms:
                if a != b:
                    ties[a, b] += 1
    linked = (ties > 0).astype(np.float32)
    shared = linked @ linked
    degree = linked.sum(1)
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
    profiles = vec.fit_transform([o["description"] for o in orgs])
    titles = vec.transform([f"{c['title']} {c['topic_title']}" for c in colls])
    experience = np.log1p([o["projects"] for o in orgs])
    kind = np.array([KINDS.index(o["kind"]) for o in orgs])
    city = [(o.get("city") or "").lower() for o in orgs]
    nuts2 = [(o.get("nuts") or "")[:4] for o in orgs]
    klynge = {}
    if args.klynge:
        for line in open(args.klynge, encoding="utf-8"):
            p = json.loads(line)
            klynge[p["id"]] = {idx[x]: r for r, x in enumerate(p["ranked"]) if x in idx}

    rows, labels, groups, candidate, wanted = [], [], [], [], {}
    for qi, q in enumerate(queries):
        known = [m for m in q["members"] if m in idx]
        if q["anchor"] not in idx or len(known) <= args.lock:
            continue
        group = [idx[q["anchor"]]] + [idx[m] for m in known[: args.lock]]
        target = {idx[m] for m in known[args.lock:]}
        wanted[qi] = max(1, q["size"] - 1 - args.lock)
        qv = vec.transform([" ".join([q["title"], q["topic"], q["topic_title"], q["objective"]])])
        text = (profiles @ qv.T).toarray().ravel()
        group_text = (profiles @ profiles[group].T).toarray()
        title_sim = (titles @ qv.T).toarray().ravel()
        similar_projects = np.zeros(n_orgs)
        for ci, ms in enumerate(members):
            for m in ms:
                similar_projects[m] = max(similar_projects[m], title_sim[ci])
        gties = ties[:, group]
        tied = (gties > 0).sum(1)
        gshared = shared[:, group].sum(1)
        gset = set(group)
        together = np.zeros(n_orgs)
        for ci in {c for g in group for c in org_colls[g]}:
            k = len(gset.intersection(members[ci]))
            for m in members[ci]:
                together[m] = max(together[m], k)
        family = q["topic"].rsplit("-", 1)[0]
        same_topic = np.array([q["topic"] in o["topics"] for o in orgs], float)
        same_family = np.array([any(t.startswith(family) for t in o["topics"]) for o in orgs], float)
        countries = collections.Counter(orgs[g]["country"] for g in group)
        cities = {city[g] for g in group if city[g]}
        regions = {nuts2[g] for g in group if nuts2[g]}
        kinds = collections.Counter(kind[g] for g in group)
        ranks = klynge.get(q["id"], {})
        pool = set(np.argsort(-text)[:150]) | set(np.argsort(-group_text.mean(1))[:150])
        pool |= set(np.nonzero(tied)[0]) | set(np.argsort(-gshared)[:150]) | set(np.argsort(-similar_projects)[:150])
        pool |= set(np.argsort(-experience)[:50]) | set(ranks)
        pool -= gset
        for c in sorted(pool):
            features = [
                text[c], text[c] / (text.max() + 1e-9), group_text[c].mean(), group_text[c].max(),
                tied[c], gties[c].sum(), gshared[c], np.log1p(gshared[c]) / np.log1p(degree[c] + 1),
                together[c], similar_projects[c], same_topic[c], same_family[c],
                countries.get(orgs[c]["country"], 0), float(city[c] in cities), float(nuts2[c] in regions),
                kinds.get(kind[c], 0), kind[c], float(orgs[c]["sme"] or 0), experience[c], degree[c],
            ]
            if args.klynge:
                features.append(np.log1p(ranks.get(c, 200)))
            rows.append(features)
            labels.append(int(c in target))
            candidate.append(c)
            groups.append(qi)
    x, y, g = np.array(rows), np.array(labels), np.array(groups)
    folds = np.array_split(np.random.default_rng(0).permutation(np.unique(g)), 5)

    def precision(score):
        values = []
        for qi in wanted:
            at = g == qi
            top = np.argsort(-score[at], kind="stable")[: wanted[qi]]
            values.append(y[at][top].sum() / wanted[qi])
        return np.mean(values)

    print(f"{len(wanted)} dev queries, {args.lock} locked, {len(y)} candidates ({y.sum()} real members)")
    if args.klynge:
        print(f"klynge's own ranking, top size-1-L: {precision(-x[:, -1]):.3f}")

    def fitted(x, make):
        score = np.zeros(len(y))
        for fold in folds:
            test = np.isin(g, fold)
            score[test] = make().fit(x[~test], y[~test]).predict_proba(x[test])[:, 1]
        return score

    def set_features(score):
        """Fit *together*: ties and shared partners with the other candidates of the
        query's stage-one network (out-of-fold scores, so no answer leaks in)."""
        extra = np.zeros((len(y), 3))
        for qi in wanted:
            at = np.nonzero(g == qi)[0]
            top = at[np.argsort(-score[at], kind="stable")[: wanted[qi]]]
            picked = [candidate[i] for i in top]
            for i in at:
                others = [p for p in picked if p != candidate[i]]
                extra[i] = [linked[candidate[i], others].sum(), ties[candidate[i], others].sum(),
                            shared[candidate[i], others].sum()]
        return np.hstack([x, extra])

    for name, make in [
        ("gradient boosting", lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, random_state=0)),
        ("logistic regression", lambda: LogisticRegression(max_iter=3000)),
    ]:
        score = fitted(x, make)
        print(f"{name}, fitted on the other dev folds: network precision {precision(score):.3f}")
        score = fitted(set_features(score), make)
        print(f"  and a second stage with fit-together features: {precision(score):.3f}")


if __name__ == "__main__":
    main()
