"""How long the admin takes to show a page of a 1,000,000-key RocksDB table.

A page must not read the whole table: each partition is read in key order
from the cursor (`Store.page`) and the partitions' pages are merged. This
fills a table of ``--keys`` keys (default 1,000,000) over ``--partitions``
partitions (default 4) through the changelog path a recovery uses, then
times the reads the admin's table page makes (``LocalAdminData.page``)::

    .venv/bin/python benchmarks/admin_page.py
    .venv/bin/python benchmarks/admin_page.py --keys 100000 --repeat 50

It prints the median and worst time of each kind of page over ``--repeat``
runs (default 20): the first page, a page from a cursor in the middle, a
key-prefix search, an exact key, and the number of keys shown on the tables
page (RocksDB's estimate).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import django
from django.conf import settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=50)
    options = parser.parse_args()

    settings.configure(
        INSTALLED_APPS=["django_faust"],
        FAUST={"APP_ID": "bench", "BROKER": "memory://", "STORE": "rocksdb://"},
    )
    django.setup()
    from django_faust.admin_data import LocalAdminData, encode_cursor
    from django_faust.testing import make_app

    with tempfile.TemporaryDirectory() as directory:
        app = make_app(
            "bench",
            store="rocksdb://",
            datadir=directory,
            topic_partitions=options.partitions,
        )
        table = app.Table("accounts", default=int)
        store = table.store
        started = time.perf_counter()
        chunk = 100_000
        for start in range(0, options.keys, chunk):
            batch: dict[int, list[tuple[bytes, bytes]]] = {}
            for i in range(start, min(start + chunk, options.keys)):
                key = json.dumps(f"account-{i:07d}").encode()
                batch.setdefault(i % options.partitions, []).append(
                    (key, str(i).encode())
                )
            for partition, records in batch.items():
                store.apply_changelog(partition, records, start)
        store.flush()
        print(
            f"filled {options.keys:,} keys in {options.partitions} partitions "
            f"in {time.perf_counter() - started:.1f} s"
        )
        data = LocalAdminData(app)
        middle = encode_cursor(json.dumps(f"account-{options.keys // 2:07d}").encode())
        size = options.page_size
        cases = {
            "first page": lambda: data.page("accounts", limit=size),
            "page from a middle cursor": lambda: data.page(
                "accounts", cursor=middle, limit=size
            ),
            "prefix search 'account-05'": lambda: data.page(
                "accounts", search="account-05", limit=size
            ),
            "exact key": lambda: data.page(
                "accounts", search="account-0777777", exact=True, limit=size
            ),
            "tables page (key count)": lambda: data.table("accounts"),
        }
        first = data.page("accounts", cursor=middle, limit=size).entries[0].key
        assert first == f"account-{options.keys // 2 + 1:07d}", first
        for name, run in cases.items():
            run()  # warm the block cache once, as a second visit would be
            times = []
            for _ in range(options.repeat):
                begin = time.perf_counter()
                result = run()
                times.append((time.perf_counter() - begin) * 1000)
            shown = len(result.entries) if hasattr(result, "entries") else result.keys
            print(
                f"{name:30} median {statistics.median(times):7.2f} ms   "
                f"worst {max(times):7.2f} ms   ({shown:,} shown)"
            )
        store.close()


if __name__ == "__main__":
    main()
