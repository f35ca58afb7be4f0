"""Charset detection on the adapter corpus: the hand rule against charset-normalizer.

Run: ``.venv/bin/python bench/charset_corpus.py`` (needs ``pip install
charset-normalizer`` for the second column). For every HTML page of
``tests/adapters/fixtures/corpus`` it decodes the bytes as the portal adapter does
(:func:`adapters.fetch.decode_html` with the page's served header charset) and as
charset-normalizer's best guess does, and counts the pages whose text equals the
page's true text. It also times both (the median of 20 runs over the corpus).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "adapters"))

from adapters.fetch import decode_html  # noqa: E402


def main() -> int:
    import test_corpus as corpus  # the table: file, encoding, served header

    pages = [p for p in corpus.PAGES if p.kind != "feed"]
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        from_bytes = None
    rows = []
    for p in pages:
        data = (corpus.CORPUS / p.file).read_bytes()
        truth = data.decode(p.encoding if p.encoding != "utf-8" else "utf-8-sig")
        header = p.header.lower().split("charset=")[1] if "charset=" in p.header else ""
        ours = decode_html(data, header)[0] == truth.lstrip("\ufeff")
        theirs = None
        if from_bytes is not None:
            best = from_bytes(data).best()
            theirs = best is not None and str(best).lstrip("\ufeff") == truth.lstrip(
                "\ufeff"
            )
        rows.append((p.file, p.encoding, p.header, ours, theirs))
    for r in rows:
        print("\t".join(str(x) for x in r))
    n = len(rows)
    print(f"hand rule: {sum(r[3] for r in rows)}/{n} pages decoded right")
    if from_bytes is not None:
        print(f"charset-normalizer: {sum(bool(r[4]) for r in rows)}/{n} pages right")
    blobs = [(corpus.CORPUS / p.file).read_bytes() for p in pages]
    for name, fn in (
        ("hand rule", lambda b: decode_html(b, "")),
        (
            "charset-normalizer",
            (lambda b: from_bytes(b).best()) if from_bytes else None,
        ),
    ):
        if fn is None:
            continue
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            for b in blobs:
                fn(b)
            runs.append(time.perf_counter() - t)
        per_page = statistics.median(runs) / len(blobs) * 1e6
        print(f"{name}: {per_page:.0f} µs per page (median of 20 runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
