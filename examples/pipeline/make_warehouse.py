"""Create the example warehouse: a SQLite database of card and deposit benefit events (made-up data).

    python examples/pipeline/make_warehouse.py            # ${JISIK_HOME:-.jisik}/examples/warehouse.sqlite3
    python examples/pipeline/make_warehouse.py --more     # add a few newer rows (see the incremental run)
    python examples/pipeline/make_warehouse.py PATH       # somewhere else

The rows imitate what a public-sector or bank data warehouse holds about benefit programmes; every
name, number and phone number is invented. ``contact_phone`` is personal data: the pipeline config
masks it before anything is landed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

COLUMNS = ("event_id", "product_type", "product_name", "title", "benefit", "conditions", "period",
           "contact_phone", "updated_at")

ROWS = [
    (1, "카드", "알뜰생활 체크카드", "대중교통 요금 10% 환급",
     "버스·지하철 요금의 10%를 다음 달 결제계좌로 돌려드립니다 (월 최대 5천 원).",
     "전월 이용실적 20만 원 이상인 개인 고객", "2025-01-01 ~ 2025-06-30", "010-1234-5678", "2025-01-02 09:00:00"),
    (2, "카드", "든든 신용카드", "첫해 연회비 면제",
     "신규 발급 고객은 첫해 연회비 1만 5천 원이 면제됩니다.",
     "최근 6개월 안에 같은 카드를 해지한 적이 없는 고객", "2025-01-15 ~ 2025-12-31", "010-2345-6789",
     "2025-01-15 10:30:00"),
    (3, "예금", "청년 희망 정기예금", "청년 우대금리 연 0.5%p",
     "만 19세부터 34세까지의 청년이 가입하면 기본금리에 연 0.5%p를 더해 드립니다.",
     "가입 기간 12개월 이상, 1인 1계좌", "2025-02-01 ~ 2025-07-31", "02-345-6789", "2025-02-01 08:00:00"),
    (4, "예금", "행복 자유적금", "자동이체 우대금리",
     "매월 급여 이체 또는 자동이체로 3회 이상 납입하면 연 0.3%p 우대금리를 드립니다.",
     "월 납입액 10만 원 이상", "2025-02-10 ~ 2025-12-31", "031-456-7890", "2025-02-10 14:00:00"),
    (5, "카드", "공공 복지 카드", "국민행복 바우처 결제 시 포인트 적립",
     "임신·출산 진료비 바우처로 결제하면 결제액의 2%를 포인트로 적립합니다.",
     "국민행복카드 발급 고객", "2025-03-01 ~ 2025-12-31", "010-3456-7890", "2025-03-01 09:00:00"),
    (6, "예금", "소상공인 상생 예금", "소상공인 특별 금리",
     "사업자등록 1년 이상 소상공인은 1년 만기 예금에 연 3.6% 금리를 적용합니다.",
     "사업자등록증 제출, 1인 3천만 원 한도", "2025-03-15 ~ 2025-09-30", "02-567-8901", "2025-03-15 11:00:00"),
]

MORE_ROWS = [
    (7, "카드", "알뜰생활 체크카드", "전통시장 결제 5% 할인",
     "전통시장 가맹점에서 결제하면 5%를 청구 할인합니다 (월 최대 1만 원).",
     "전월 이용실적 30만 원 이상", "2025-04-01 ~ 2025-06-30", "010-4567-8901", "2025-04-01 09:00:00"),
    (3, "예금", "청년 희망 정기예금", "청년 우대금리 연 0.7%p로 확대",
     "만 19세부터 34세까지의 청년이 가입하면 기본금리에 연 0.7%p를 더해 드립니다 (4월부터 확대).",
     "가입 기간 12개월 이상, 1인 1계좌", "2025-02-01 ~ 2025-07-31", "02-345-6789", "2025-04-02 08:00:00"),
]


def default_path() -> Path:
    return Path(os.environ.get("JISIK_HOME", ".jisik")) / "examples" / "warehouse.sqlite3"


def make_warehouse(path: Path, *, more: bool = False) -> int:
    """Create (or refresh) the table; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS benefit_events (event_id INTEGER PRIMARY KEY, product_type TEXT NOT NULL, "
            "product_name TEXT NOT NULL, title TEXT NOT NULL, benefit TEXT NOT NULL, conditions TEXT, period TEXT, "
            "contact_phone TEXT, updated_at TEXT NOT NULL)"
        )
        insert = f"INTO benefit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        db.executemany("INSERT OR IGNORE " + insert, ROWS)  # never undoes the newer rows of --more
        if more:
            db.executemany("INSERT OR REPLACE " + insert, MORE_ROWS)
        return int(db.execute("SELECT COUNT(*) FROM benefit_events").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=None)
    parser.add_argument("--more", action="store_true", help="also write the newer rows")
    args = parser.parse_args()
    path = args.path or default_path()
    print(f"{path}: {make_warehouse(path, more=args.more)} rows")


if __name__ == "__main__":
    main()
