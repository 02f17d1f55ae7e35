"""gpu-matmul: times `iterations` multiplications of two n×n matrices on a GPU and reports TFLOP/s.

PyTorch is imported only when the task runs, so this module loads (and its errors are clear)
where torch is missing. No GPU, or no torch, is a NonRetryableError: a retry lands on the same kind
of node and fails the same way.
"""

from __future__ import annotations

import time
from typing import Any

from kubetask_sdk import Context, NonRetryableError, run, task

DTYPES = ("float32", "float16", "bfloat16")


@task("gpu-matmul")
def gpu_matmul(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    n = int(params.get("n", 4096))
    iterations = int(params.get("iterations", 20))
    warmup = int(params.get("warmup", 3))
    dtype_name = params.get("dtype", "float16")
    if dtype_name not in DTYPES:
        raise NonRetryableError(f"dtype {dtype_name!r} is not one of {', '.join(DTYPES)}")
    try:
        import torch
    except ImportError as e:
        raise NonRetryableError(
            f"PyTorch is not installed in this image ({e}); build the gpu-matmul handler from "
            "handlers-images/examples/gpu-matmul/Dockerfile (a pytorch CUDA runtime image)"
        ) from e
    if not torch.cuda.is_available():
        raise NonRetryableError(
            "no CUDA GPU is visible to PyTorch: run this TaskType with resources.gpu >= 1 on a node "
            "with the NVIDIA device plugin (the pod asks for the TaskType's gpuResourceName)"
        )

    device = torch.device("cuda:0")
    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        torch.matmul(a, b)
    torch.cuda.synchronize()

    done = 0
    started = time.perf_counter()
    for i in range(iterations):
        if ctx.cancelled.is_set():
            break
        torch.matmul(a, b)
        done += 1
        if (i + 1) % max(1, iterations // 10) == 0:
            torch.cuda.synchronize()
            ctx.progress((i + 1) * 100 // iterations, f"{i + 1}/{iterations} multiplications")
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    flops = 2.0 * n**3 * done
    return {
        "device": torch.cuda.get_device_name(device),
        "n": n,
        "dtype": dtype_name,
        "iterations": done,
        "seconds": round(elapsed, 4),
        "tflops": round(flops / elapsed / 1e12, 3) if elapsed > 0 else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


if __name__ == "__main__":
    run()
