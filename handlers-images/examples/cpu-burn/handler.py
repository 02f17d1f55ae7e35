"""cpu-burn: keeps one core busy for `seconds` (or `iterations`) and returns how much it did.

algorithm `sha256` hashes a 32-byte digest over and over; `primes` counts primes by trial division.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Iterator

from kubetask_sdk import Context, NonRetryableError, run, task

CHECK_EVERY = 1000  # iterations between looks at the clock and at ctx.cancelled


def sha256_chain() -> Iterator[str]:
    digest = b"kubetask"
    while True:
        digest = hashlib.sha256(digest).digest()
        yield digest.hex()


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


@task("cpu-burn")
def cpu_burn(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    algorithm = params.get("algorithm", "sha256")
    if "iterations" in params and "seconds" in params:
        raise NonRetryableError("give either iterations or seconds, not both")
    iterations = int(params["iterations"]) if "iterations" in params else None
    seconds = None if iterations is not None else float(params.get("seconds", 10))
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")

    count, primes, last = 0, 0, ""
    chain = sha256_chain()
    while iterations is None or count < iterations:
        if count % CHECK_EVERY == 0 and (time.monotonic() >= deadline or ctx.cancelled.is_set()):
            break
        count += 1
        if algorithm == "primes":
            primes += is_prime(count)
        else:
            last = next(chain)
    elapsed = time.monotonic() - started
    result: dict[str, Any] = {
        "algorithm": algorithm,
        "iterations": count,
        "elapsedSeconds": round(elapsed, 3),
        "iterationsPerSecond": round(count / elapsed, 1) if elapsed > 0 else None,
    }
    if algorithm == "primes":
        result["primes"] = primes
    else:
        result["lastDigest"] = last
    return result


if __name__ == "__main__":
    run()
