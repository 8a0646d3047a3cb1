"""Write the Smartstore FAQ and the hand-written paraphrase questions in AutoRAG format.

Reads ../shared/data/smartstore_faq/final_result.jsonl (third-party; never copied into the repo)
and bench/data/faq_paraphrases.jsonl; writes bench/.cache/faq_corpus.jsonl and
bench/.cache/faq_paraphrase_qa.jsonl, which `jisik eval --chunker whole` reads.
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
                "metadata": {"category": row.get("categories") or ""},
            }, ensure_ascii=False) + "\n")
    qa = CACHE / "faq_paraphrase_qa.jsonl"
    with (ROOT / "bench" / "data" / "faq_paraphrases.jsonl").open(encoding="utf-8") as src, \
            qa.open("w", encoding="utf-8") as out:
        for line in src:
            row = json.loads(line)
            out.write(json.dumps({
                "qid": row["qid"], "query": row["query"],
                "retrieval_gt": [[str(i) for i in row["gold_ids"]]], "generation_gt": [],
            }, ensure_ascii=False) + "\n")
    print(corpus)
    print(qa)
    return 0


if __name__ == "__main__":
    sys.exit(main())
