"""The FAQ app's off-topic gate, measured.

Default run: the gate exactly as the ``faq`` app builds it, over the shared evaluation questions
(../shared/data/smartstore_faq/eval_questions_{related,unrelated}_llm_generated.txt, 100 + 100,
the TEST set), plus the fallback that sees only the retrieval scores. Writes
bench/results/faq_offtopic.json: accuracy per side, confusion, the misclassified questions as
line numbers of those files (never their text), and the gate's latency.

``--calibrate``: the design study on bench/data/faq_offtopic_calibration.jsonl (hand-written,
80 related + 80 unrelated; never the test set): balanced accuracy of every candidate feature,
L2 logistic fits with leave-one-out accuracy, and the parameters to copy into
src/jisik/apps/faq/offtopic.py. Writes bench/results/faq_offtopic_calibration.json.

Both ingest the FAQ first (``ingest_faq``; with the embedding cache under JISIK_HOME, a re-run
embeds nothing).

    JISIK_HOME=bench/.cache/home python bench/faq_offtopic.py [--calibrate]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import ROOT, SHARED, write_result

from jisik.apps.faq import faq_app, ingest_faq
from jisik.apps.faq.offtopic import CALIBRATED, FaqOffTopicFilter, retrieval_evidence
from jisik.apps.faq.prototypes import build_prototypes, load_prototypes, prototypes_path
from jisik.eval.metrics import percentile_ms
from jisik.pipeline.loaders import load_faq_pickle
from jisik.runtime import Runtime
from jisik.text.normalize import normalize_query

FAQ_DIR = SHARED / "smartstore_faq"
CALIBRATION = ROOT / "bench" / "data" / "faq_offtopic_calibration.jsonl"
TEST_FILES = {True: "eval_questions_related_llm_generated.txt", False: "eval_questions_unrelated_llm_generated.txt"}


@dataclass(slots=True)
class Question:
    qid: str  # calibration id, or "related:L12" / "unrelated:L7" (line number in the shared file)
    text: str
    related: bool


def test_questions() -> list[Question]:
    out = []
    for related, name in TEST_FILES.items():
        side = "related" if related else "unrelated"
        for n, line in enumerate((FAQ_DIR / name).read_text("utf-8").splitlines(), 1):
            if line.strip():
                out.append(Question(f"{side}:L{n}", line.strip(), related))
    return out


def calibration_questions() -> list[Question]:
    rows = [json.loads(line) for line in CALIBRATION.read_text("utf-8").splitlines() if line.strip()]
    return [Question(r["id"], r["query"], r["label"] == "related") for r in rows]


def retrieve(rt: Runtime, q: str, top_k: int) -> Any:
    # as the chat use case retrieves (rag/chat.py): app top_k, up to 3 chunks per document
    return rt.retriever.retrieve(q, "faq", top_k=top_k, overrides={"max_per_doc": 3})


# -- report ---------------------------------------------------------------------------------------
def evaluate(rt: Runtime, gate: FaqOffTopicFilter, questions: list[Question], top_k: int) -> dict[str, Any]:
    wrong: dict[str, list[str]] = {"related": [], "unrelated": []}
    counts = {"related": [0, 0], "unrelated": [0, 0]}  # side -> [judged on topic, judged off topic]
    times: list[float] = []
    for q in questions:
        hits = retrieve(rt, q.text, top_k).hits
        t = time.perf_counter()
        decision = gate.check(normalize_query(q.text), hits)
        times.append(time.perf_counter() - t)
        side = "related" if q.related else "unrelated"
        counts[side][0 if decision.on_topic else 1] += 1
        if decision.on_topic != q.related:
            wrong[side].append(q.qid.split(":", 1)[-1])
    rel, unr = counts["related"], counts["unrelated"]
    return {
        "related": {"n": sum(rel), "accuracy": round(rel[0] / max(sum(rel), 1), 4), "misclassified": wrong["related"]},
        "unrelated": {"n": sum(unr), "accuracy": round(unr[1] / max(sum(unr), 1), 4),
                      "misclassified": wrong["unrelated"]},
        "confusion": {"related_judged_on_topic": rel[0], "related_judged_off_topic": rel[1],
                      "unrelated_judged_on_topic": unr[0], "unrelated_judged_off_topic": unr[1]},
        "check_p50_ms": percentile_ms(times, 50), "check_p95_ms": percentile_ms(times, 95),
    }


def report(rt: Runtime) -> dict[str, Any]:
    app = faq_app(rt.settings)
    params = CALIBRATED[rt.settings.embedder]
    gates = {"prototypes": app.offtopic,
             "retrieval evidence only (fallback)": FaqOffTopicFilter(params, settings=rt.settings,
                                                                     use_prototypes=False)}
    out: dict[str, Any] = {"embedder": rt.embedder.model_id, "params": dataclasses.asdict(params),
                           "top_k": app.top_k, "test": {}, "calibration": {}}
    for label, gate in gates.items():
        assert isinstance(gate, FaqOffTopicFilter)
        out["test"][label] = evaluate(rt, gate, test_questions(), app.top_k)
        out["calibration"][label] = evaluate(rt, gate, calibration_questions(), app.top_k)
        t = out["test"][label]
        print(f"  {label}: related {t['related']['accuracy']:.3f}, unrelated {t['unrelated']['accuracy']:.3f} "
              f"(check p50 {t['check_p50_ms']:.2f} ms)", flush=True)
    return out


# -- calibration ----------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 100) -> tuple[float, np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised features;
    returns (bias, weights) in the raw feature space."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    w = np.zeros(z.shape[1])
    reg = l2 * np.diag(np.r_[0.0, np.ones(z.shape[1] - 1)])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z + reg, z.T @ (p - y) + reg @ w)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    raw = w[1:] / sd
    return float(w[0] - (w[1:] * mu / sd).sum()), raw


def loo_accuracy(x: np.ndarray, y: np.ndarray, l2: float) -> dict[str, float]:
    pred = np.zeros(len(y), bool)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        b, w = fit_logistic(x[keep], y[keep], l2)
        pred[i] = b + x[i] @ w >= 0
    return {"related": round(float(pred[y == 1].mean()), 4), "unrelated": round(float((~pred[y == 0]).mean()), 4)}


def best_threshold(v: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The threshold with the best balanced accuracy (on topic iff value >= threshold)."""
    best = (-1.0, 0.0)
    for t in np.unique(v):
        acc = ((v[y == 1] >= t).mean() + (v[y == 0] < t).mean()) / 2
        if acc > best[0]:
            best = (float(acc), float(t))
    return {"balanced_accuracy": round(best[0], 4), "threshold": round(best[1], 4)}


def calibrate(rt: Runtime) -> dict[str, Any]:
    app = faq_app(rt.settings)
    questions = calibration_questions()
    y = np.array([q.related for q in questions], float)
    docs = load_faq_pickle(FAQ_DIR / "final_result.pkl")
    protos = load_prototypes(prototypes_path(rt.settings.home, "faq"))
    if protos is None:
        raise SystemExit("no prototypes: ingest first")
    # the same questions embedded as passages, and the centroid of the query-side prototypes
    as_passages = build_prototypes(_PassageSide(rt.embedder), docs)
    centroid = protos.vectors.mean(0)
    centroid /= np.linalg.norm(centroid)
    feats: dict[str, list[float]] = {k: [] for k in (
        "prototype max cosine (questions as queries)", "prototype mean of 5 best", "prototype max cosine "
        "(questions as passages)", "best dense score of the hits", "best lexical coverage of the hits",
        "cosine to the centroid of the questions")}
    for q in questions:
        hits = retrieve(rt, q.text, app.top_k).hits
        qv = rt.embedder.embed_queries([normalize_query(q.text)])[0]
        sims = np.sort(protos.vectors @ qv)[::-1]
        dense, lexical = retrieval_evidence(hits)
        for key, v in zip(feats, (sims[0], sims[:5].mean(), as_passages.best(qv)[0], dense, lexical,
                                  float(centroid @ qv)), strict=True):
            feats[key].append(float(v))
    arrays = {k: np.array(v) for k, v in feats.items()}
    names = list(arrays)
    candidates = {k: best_threshold(v, y) for k, v in arrays.items()}
    models = {"prototype": [names[0]], "prototype + lexical": [names[0], names[4]],
              "prototype + dense + lexical": [names[0], names[3], names[4]],
              "retrieval evidence (dense + lexical)": [names[3], names[4]]}
    fits: dict[str, Any] = {}
    for label, cols in models.items():
        x = np.c_[tuple(arrays[c] for c in cols)]
        b, w = fit_logistic(x, y)
        fits[label] = {"features": cols, "bias": round(b, 2), "weights": [round(float(v), 2) for v in w],
                       "leave_one_out": loo_accuracy(x, y, 1.0)}
        if len(cols) == 1:
            fits[label]["threshold"] = round(-b / float(w[0]), 4)
        print(f"  {label}: {fits[label]}", flush=True)
    return {"embedder": rt.embedder.model_id, "candidates": candidates, "fits": fits,
            "questions": {"related": int(y.sum()), "unrelated": int(len(y) - y.sum())}}


class _PassageSide:
    """An embedder view whose queries are embedded as passages (for the candidate table)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim

    def embed_queries(self, texts: Any) -> np.ndarray:
        return np.asarray(self.inner.embed_passages(texts))

    def embed_passages(self, texts: Any) -> np.ndarray:
        return np.asarray(self.inner.embed_passages(texts))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", action="store_true", help="the design study on the calibration set")
    args = ap.parse_args()
    rt = Runtime()
    t = time.perf_counter()
    ingested = ingest_faq(rt, FAQ_DIR / "final_result.pkl")
    print(f"  faq: {ingested.index.documents_seen} entries, {ingested.index.chunks_indexed} chunks embedded, "
          f"prototypes rebuilt: {ingested.prototypes_rebuilt} ({time.perf_counter() - t:.1f}s)", flush=True)
    if args.calibrate:
        write_result("faq_offtopic_calibration", calibrate(rt))
    else:
        write_result("faq_offtopic", report(rt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
