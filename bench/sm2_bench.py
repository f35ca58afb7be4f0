"""SM2/SM3 (``sm2-sm3``) sign and verify rates next to Ed25519, on this machine, one core.

    python bench/sm2_bench.py [--seconds 2] [--json]

Measures, through the same :class:`~exchange.core.signing.PrivateKey` /
:class:`~exchange.core.signing.PublicKey` calls the node uses, signatures over the
signing input of a realistic ~2 KB item (context string + canonical bytes):

* Ed25519 sign / verify (PyNaCl, as the node uses it),
* SM2 sign / verify (gmssl-pyx: SM3 with Z of the default signer ID, r‖s ↔ DER),
* SM2 verify with the independent pure-Python ``gmalg`` (if installed), for scale.

Each figure is the median of three timed rounds of about ``--seconds`` each. Read
absolute numbers as ±30 % on a shared host; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange.core.canonical import canonical_json  # noqa: E402
from exchange.core.items import signing_input  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.templates import template  # noqa: E402


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second: median of three rounds of about ``seconds`` each."""
    n = 1
    while True:  # calibrate a batch that takes ~50 ms
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    batch = max(1, int(n * 0.05 / dt))
    rates = []
    for _ in range(3):
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(batch):
                fn()
            done += batch
        rates.append(done / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each round")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()

    item = template("case_study", "huaibei-duji")
    item["summary"] = "杜集区人大常委会预算联网监督工作案例。" * 18
    message = signing_input(item)
    results: dict[str, float] = {}
    for alg in ("ed25519", "sm2-sm3"):
        key = generate_key(alg, "huaibei-duji#k1")
        sig = key.sign(message)
        pub = key.public_key
        assert pub.verify(message, sig)
        results[f"{alg} sign"] = _rate(lambda k=key: k.sign(message), args.seconds)
        results[f"{alg} verify"] = _rate(
            lambda p=pub, s=sig: p.verify(message, s), args.seconds
        )
    try:
        import gmalg

        key = generate_key("sm2-sm3")
        sig = key.sign(message)
        ref = gmalg.SM2(uid=b"1234567812345678", pk=b"\x04" + key.public_key.raw)
        assert ref.verify(message, sig[:32], sig[32:])
        results["sm2-sm3 verify (gmalg, pure Python)"] = _rate(
            lambda: ref.verify(message, sig[:32], sig[32:]), min(args.seconds, 1.0)
        )
    except ImportError:
        pass

    if args.json:
        print(
            json.dumps({"message_bytes": len(message), "ops_per_s": results}, indent=2)
        )
        return
    print(
        f"signing input: {len(message)} bytes (2 KB item, canonical {len(canonical_json(item))} B)"
    )
    print(f"{'operation':40} {'ops/s':>10} {'µs/op':>9}")
    for name, rate in results.items():
        print(f"{name:40} {rate:10,.0f} {1e6 / rate:9.1f}")
    ed_s, sm_s = results["ed25519 sign"], results["sm2-sm3 sign"]
    ed_v, sm_v = results["ed25519 verify"], results["sm2-sm3 verify"]
    print(
        f"SM2/Ed25519: sign {sm_s / ed_s:.2f}×, verify {sm_v / ed_v:.2f}× the Ed25519 rate"
    )


if __name__ == "__main__":
    main()
