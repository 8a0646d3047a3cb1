"""Write the Smartstore FAQ and the hand-written paraphrase questions in AutoRAG format.

Reads ../shared/data/smartstore_faq/final_result.jsonl (third-party; never copied into the repo)
and the two hand-written question sets bench/data/faq_paraphrases.jsonl (tuning) and
bench/data/faq_seller_questions.jsonl (held out); writes bench/.cache/faq_corpus.jsonl (each entry
marked ``kind: faq`` with its question as title) and bench/.cache/faq_paraphrase_qa.jsonl /
faq_seller_qa.jsonl, which `jisik eval --chunker whole` reads.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JISIK_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / ".cache"


def main() -> int:
    faq = SHARED / "smartstore_faq" / "final_result.jsonl"
    CACHE.mkdir(parents=True, exist_ok=True)
    corpus = CACHE / "faq_corpus.jsonl"
    with faq.open(encoding="utf-8") as src, corpus.open("w", encoding="utf-8") as out:
        for line in src:
            row = json.loads(line)
            out.write(json.dumps({
                "doc_id": str(row["id"]), "contents": f"{row['question']}\n{row['answer']}",
                "metadata": {"category": row.get("categories") or "", "kind": "faq", "title": row["question"]},
            }, ensure_ascii=False) + "\n")
    print(corpus)
    for name, qa in (("faq_paraphrases", "faq_paraphrase_qa"), ("faq_seller_questions", "faq_seller_qa")):
        print(write_qa(ROOT / "bench" / "data" / f"{name}.jsonl", CACHE / f"{qa}.jsonl"))
    return 0


def write_qa(questions: Path, qa: Path) -> Path:
    with questions.open(encoding="utf-8") as src, qa.open("w", encoding="utf-8") as out:
        for line in src:
            row = json.loads(line)
            out.write(json.dumps({
                "qid": row["qid"], "query": row["query"],
                "retrieval_gt": [[str(i) for i in row["gold_ids"]]], "generation_gt": [],
            }, ensure_ascii=False) + "\n")
    return qa


if __name__ == "__main__":
    sys.exit(main())
