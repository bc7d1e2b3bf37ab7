"""plip.Index at a million entries: exact and FAISS search, build, add, memory; encoding throughput.

Data: ``--rows`` x ``--dim`` synthetic clustered, L2-normalised embeddings (``--clusters``
centres plus Gaussian noise, like crops of the same people under different cameras), stored
float16 in the index. Queries are new points of the same distribution. Ground truth is the
exact top-10 over the stored (float16) vectors; recall@10 of an approximate backend is the
fraction of those ten it returns.

Baseline for exact search: ``plip.retrieve`` over a float32 tensor in memory (what
``plip search`` does with a ``plip encode`` file), measured in the same run. Speed-ups of
the approximate backends are against the fastest exact single query measured (plip.retrieve
or the index's exact backend over a float32 or float16 store).
Memory: peak resident set of each phase (``/proc/self/clear_refs`` resets the peak).

Encoding throughput: ``plip encode`` and ``plip index build`` (the same model, images,
batch size and workers), interleaved, best of ``--rounds``; after the model load (the
pipeline: graph, fingerprint, encoding, writing) and for the whole command.

Compaction: ``Index.compact()`` of the float16 exact index after deleting 1% of its rows.

    python benchmarks/bench_index.py [--rows 1000000] [--dim 768] [--queries 100] [--hnsw-rows 50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

# The development machines are shared: OpenMP threads that spin while waiting slow every
# parallel region down when other jobs hold the cores (faiss and torch alike).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def peak_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def clustered(rows: int, dim: int, clusters: int, noise: float, seed: int, dtype=np.float16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((rows, dim), dtype=dtype)
    for start in range(0, rows, 65536):
        n = min(65536, rows - start)
        block = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + n] = block
    return out


def timed(fn, repeat: int = 1):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def recall(hits, truth) -> float:
    got = [{h.row for h in q} for q in hits]
    return float(np.mean([len(g & set(t)) / len(t) for g, t in zip(got, truth)]))


# The child runs one `plip` command and prints the seconds of the whole command and of what
# follows the model load (the import of transformers and the load are the same code for both
# commands, and their time varies with the machine's load more than the encoding does).
CHILD = textwrap.dedent("""
    import sys, time
    import plip.inference as inference
    from plip.app.cli.main import main
    load, marks = inference.load, {}
    def timed_load(*args, **kwargs):
        model = load(*args, **kwargs)
        marks["loaded"] = time.perf_counter()
        return model
    inference.load = timed_load
    start = time.perf_counter()
    rc = main(sys.argv[1:])
    end = time.perf_counter()
    print("timing:", end - start, end - marks["loaded"], file=sys.stderr)
    sys.exit(rc)
""")


def encoding_throughput(images: int, rounds: int, work: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Images per second of `plip encode` and `plip index build` (fresh process each), as
    ``(whole command, after the model load)`` per command."""
    from plip.data.synthetic import generate_dataset

    data = os.path.join(work, "synth")
    generate_dataset(data, identities=max(1, images // 4), images_per_id=4, seed=0, progress=False, overwrite=True)
    base = [sys.executable, "-c", CHILD]
    common = ["--model", "plip-tiny-synth", "--images", os.path.join(data, "Part1"), "--batch-size", "64",
              "--workers", "1", "--no-progress"]
    runs: dict[str, list[tuple[float, float]]] = {"encode": [], "index": []}
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for _ in range(rounds):
        for name, cmd in (("encode", base + ["encode", *common, "--out", os.path.join(work, "g.safetensors")]),
                          ("index", base + ["index", "build", os.path.join(work, "enc.index"), *common,
                                            "--overwrite", "--restart"])):
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                raise SystemExit(out.stderr)
            line = [l for l in out.stderr.splitlines() if l.startswith("timing:")][-1]
            runs[name].append(tuple(float(x) for x in line.split()[1:]))
    return tuple(tuple(images / min(r[j] for r in runs[name]) for j in (0, 1)) for name in ("encode", "index"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.6, help="noise norm relative to a unit centre")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--add", type=int, default=10_000)
    parser.add_argument("--hnsw-rows", type=int, default=50_000, help="HNSW builds slowly on 2 cores; 0 skips")
    parser.add_argument("--backends", nargs="+", default=["ivf", "ivfpq", "hnsw"], help="approximate backends to run")
    parser.add_argument("--images", type=int, default=512, help="images for the encoding throughput check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    import plip

    print(subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    print(f"torch threads {torch.get_num_threads()}; {args.rows} x {args.dim}, {args.clusters} clusters, "
          f"{args.queries} queries")
    print("load average (1, 5, 15 min): %.1f %.1f %.1f" % os.getloadavg())
    work = args.work or tempfile.mkdtemp(prefix="plip-bench-index-")
    try:
        data = clustered(args.rows, args.dim, args.clusters, args.noise, seed=0)
        queries = clustered(args.queries, args.dim, args.clusters, args.noise, seed=1, dtype=np.float32)
        ids = [f"{i:08d}" for i in range(args.rows)]

        peak_reset()
        t_build, index = timed(lambda: plip.Index.from_embeddings(os.path.join(work, "exact"), data, ids,
                                                                   backend="exact", overwrite=True))
        print(f"build exact (write float16 store): {t_build:.1f} s, peak RSS {peak_mib():.0f} MiB")

        gallery32 = torch.from_numpy(data.astype(np.float32))
        q = torch.from_numpy(queries)
        index32 = plip.Index.from_embeddings(os.path.join(work, "exact32"), gallery32, ids, backend="exact",
                                             dtype="float32", overwrite=True)
        runs = {name: [float("inf"), float("inf")] for name in ("retrieve", "fp16", "fp32")}
        for _ in range(args.rounds):  # interleaved: the machine's load changes from minute to minute
            for name, batched, single in (
                ("retrieve", lambda: plip.retrieve(q, gallery32, top_k=10), lambda: plip.retrieve(q[0], gallery32, top_k=10)),
                ("fp16", lambda: index.search(embedding=queries, top_k=10), lambda: index.search(embedding=queries[0], top_k=10)),
                ("fp32", lambda: index32.search(embedding=queries, top_k=10), lambda: index32.search(embedding=queries[0], top_k=10)),
            ):
                runs[name][0] = min(runs[name][0], timed(batched)[0])
                runs[name][1] = min(runs[name][1], timed(single)[0])
        base = plip.retrieve(q, gallery32, top_k=10)
        hits = index.search(embedding=queries, top_k=10)
        del gallery32, index32
        shutil.rmtree(os.path.join(work, "exact32"), ignore_errors=True)
        (t_base, t_base1), (t_ex, t_ex1), (t_32, t_321) = runs["retrieve"], runs["fp16"], runs["fp32"]
        truth = [[h.row for h in qh] for qh in hits]
        agree = np.mean([set(t) == set(b) for t, b in zip(truth, base.indices.tolist())])
        print(f"exact, {args.queries} queries batched / 1 query (best of {args.rounds}, interleaved): "
              f"plip.retrieve on float32 in RAM {t_base:.2f} s / {t_base1 * 1e3:.0f} ms; "
              f"index float32 store {t_32:.2f} s (x{t_base / t_32:.2f}) / {t_321 * 1e3:.0f} ms (x{t_base1 / t_321:.2f}); "
              f"index float16 store {t_ex:.2f} s (x{t_base / t_ex:.2f}) / {t_ex1 * 1e3:.0f} ms (x{t_base1 / t_ex1:.2f}); "
              f"same top-10 sets as plip.retrieve {agree:.2f}")

        victims = ids[:: 100]
        index.delete(victims)
        t_compact, dropped = timed(index.compact)
        print(f"compact after deleting {len(victims)} of {args.rows}: {t_compact:.1f} s ({dropped} rows dropped, "
              f"{index.info()['bytes'] / 2**20:.0f} MiB left)")
        del index

        results = []
        for kind, params, n, knobs in (("ivf", None, args.rows, [("nprobe", 4), ("nprobe", 8), ("nprobe", 16)]),
                                       ("ivfpq", None, args.rows, [("nprobe", 8), ("nprobe", 16)]),
                                       ("hnsw", None, args.hnsw_rows, [("ef", 64), ("ef", 128)])):
            if n <= 0 or kind not in args.backends:
                continue
            sub = data[:n]
            peak_reset()
            t_b, ix = timed(lambda: plip.Index.from_embeddings(os.path.join(work, kind), sub, ids[:n], backend=kind,
                                                               backend_params=params, overwrite=True))
            mem = peak_mib()
            if n != args.rows:
                ex_n = plip.Index.from_embeddings(os.path.join(work, "exact-sub"), sub, ids[:n], backend="exact",
                                                  overwrite=True)
                sub_truth = [[h.row for h in qh] for qh in ex_n.search(embedding=queries, top_k=10)]
                t_ref, _ = timed(lambda: ex_n.search(embedding=queries[0], top_k=10), 3)
            else:  # against the fastest exact search measured above
                sub_truth, t_ref = truth, min(t_base1, t_321, t_ex1)
            per_m = 1e6 / n
            print(f"{kind} ({n} rows, {ix.info()['backend_params']}): build {t_b:.1f} s "
                  f"({t_b * per_m:.0f} s per million), peak RSS {mem:.0f} MiB, files {ix.info()['bytes'] / 2**20:.0f} MiB")
            for knob, value in knobs:
                t_b1 = timed(lambda: [ix.search(embedding=queries[i], top_k=10, **{knob: value})
                                      for i in range(args.queries)], 1)[0] / args.queries
                r = recall(ix.search(embedding=queries, top_k=10, **{knob: value}), sub_truth)
                print(f"   {knob}={value}: single query {t_b1 * 1e3:.2f} ms (exact {t_ref * 1e3:.0f} ms: "
                      f"x{t_ref / t_b1:.0f}), recall@10 {r:.3f}")
                results.append((kind, knob, value, t_ref / t_b1, r))
            if kind == "ivf":
                extra = clustered(args.add, args.dim, args.clusters, args.noise, seed=2)
                t_add, _ = timed(lambda: ix.add_embeddings(extra, [f"new{i}" for i in range(args.add)]))
                print(f"   add {args.add} to {n}: {t_add:.2f} s vs rebuild {t_b:.1f} s (x{t_b / t_add:.0f} cheaper)")
            del ix
            shutil.rmtree(os.path.join(work, kind), ignore_errors=True)
        ok = [r for r in results if r[3] >= 50 and r[4] >= 0.95]
        print("approximate >= 50x faster than exact at recall@10 >= 0.95: "
              + (", ".join(f"{k} {kn}={v} (x{s:.0f}, {r:.3f})" for k, kn, v, s, r in ok) or "none"))
        if args.images:
            (enc, enc_run), (idx, idx_run) = encoding_throughput(args.images, args.rounds, work)
            print(f"encoding {args.images} images (plip-tiny-synth, 1 worker, best of {args.rounds}, interleaved): "
                  f"after the model load plip encode {enc_run:.0f} img/s, plip index build {idx_run:.0f} img/s "
                  f"(x{idx_run / enc_run:.2f}); whole command {enc:.0f} vs {idx:.0f} img/s (x{idx / enc:.2f})")
        print("load average (1, 5, 15 min): %.1f %.1f %.1f" % os.getloadavg())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
