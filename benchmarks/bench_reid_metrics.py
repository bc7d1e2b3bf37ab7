"""Speed of the vectorised ReID metrics against per-query loops, at Market-1501 size.

3,368 queries x 15,913 gallery images, 751 identities, 6 cameras (plus distractor id 0
in the gallery), synthetic features clustered by identity so the metrics are not
trivial. All methods score the same distance matrix in the same run; results must agree
to 1e-6 and the speed ratios are printed.

Baselines:
- ``loop``: torchreid's Python ``eval_market1501`` logic (one argsort of the matrix,
  then a Python loop over queries, AP via a list comprehension over the gallery).
- ``loop-np``: the same loop with the per-query AP done by numpy (a fairer baseline).

Run:  python benchmarks/bench_reid_metrics.py [--device cuda] [--skip-slow]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from plip.evaluation.reid_metrics import compute_rank_metrics, evaluate_reid


def market_like(seed: int = 0, dim: int = 256):
    rng = np.random.default_rng(seed)
    num_q, num_g, num_ids, num_cams = 3368, 15913, 751, 6
    centers = rng.normal(size=(num_ids + 1, dim)).astype(np.float32)
    # Every identity is in the gallery (plus 2,793 distractors, id 0, as in Market-1501).
    extra = rng.integers(1, num_ids + 1, num_g - 2793 - num_ids)
    g_pids = np.concatenate([np.arange(1, num_ids + 1), extra, np.zeros(2793, dtype=np.int64)])
    q_pids = rng.integers(1, num_ids + 1, num_q)
    q_cams, g_cams = rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)
    noise = 1.2
    q = centers[q_pids] + noise * rng.normal(size=(num_q, dim)).astype(np.float32)
    g = centers[g_pids] + noise * rng.normal(size=(num_g, dim)).astype(np.float32)
    g[g_pids == 0] = noise * rng.normal(size=((g_pids == 0).sum(), dim))
    return q, g, q_pids, g_pids, q_cams, g_cams


def loop_torchreid(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, numpy_ap=False):
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        last = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp_cmc = raw_cmc.cumsum()
        if numpy_ap:
            tmp_cmc = tmp_cmc / np.arange(1.0, len(tmp_cmc) + 1)
        else:
            tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(tmp_cmc)])
        all_ap.append((tmp_cmc * raw_cmc).sum() / raw_cmc.sum())
    return (
        np.asarray(all_cmc).astype(np.float32).mean(0),
        float(np.mean(all_ap)),
        float(np.mean(all_inp)),
    )


def timed(fn, repeat=1, warmup=False):
    """Best wall time of ``repeat`` calls (after one untimed call if ``warmup``)."""
    if warmup:
        fn()
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="cpu", help="device for the vectorised runs (cpu, cuda)"
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip the list-comprehension loop")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    q, g, q_pids, g_pids, q_cams, g_cams = market_like()
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    distmat = torch.cdist(qt, gt).pow_(2).numpy()
    print(f"queries {len(q_pids)}, gallery {len(g_pids)}, ids {len(set(g_pids) - {0})}, "
          f"cameras 6, torch threads {torch.get_num_threads()}, device {args.device}")  # fmt: skip

    dist_dev = torch.from_numpy(distmat).to(args.device)
    t_vec, ours = timed(
        lambda: compute_rank_metrics(dist_dev, q_pids, g_pids, q_cams, g_cams), args.repeat, True
    )
    t_feat, ours_feat = timed(
        lambda: evaluate_reid(
            qt.to(args.device), q_pids, q_cams, gt.to(args.device), g_pids, g_cams
        ),
        args.repeat,
        True,
    )
    print(
        f"vectorised, from distmat   {t_vec:8.3f} s   rank1 {ours['rank1']:.4f} "
        f"mAP {ours['mAP']:.4f} mINP {ours['mINP']:.4f} (skipped {ours['num_skipped_queries']})"
    )
    print(f"vectorised, from features  {t_feat:8.3f} s   (distances included, chunked)")

    baselines = [("loop-np", True)] + ([] if args.skip_slow else [("loop", False)])
    for name, numpy_ap in baselines:
        start = time.perf_counter()
        cmc, m_ap, m_inp = loop_torchreid(
            distmat, q_pids, g_pids, q_cams, g_cams, numpy_ap=numpy_ap
        )
        t_ref = time.perf_counter() - start
        agree = (abs(m_ap - ours["mAP"]) < 1e-6 and abs(m_inp - ours["mINP"]) < 1e-6
                 and np.allclose(cmc, ours["cmc"][: len(cmc)], atol=1e-6))  # fmt: skip
        print(f"{name:<8} per-query loop      {t_ref:8.3f} s   agree to 1e-6: {agree}   "
              f"speed-up {t_ref / t_vec:6.1f}x (distmat)")  # fmt: skip
    mismatch = abs(ours_feat["mAP"] - ours["mAP"])
    print(f"features vs distmat mAP difference {mismatch:.2e}")


if __name__ == "__main__":
    main()
