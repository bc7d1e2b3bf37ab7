"""Exported graphs in onnxruntime vs the official PyTorch forward, at plip-rn50 size on CPU.

Baseline (official): fp32 NCHW eager image forward under ``torch.no_grad`` in batches of 16;
texts padded to 64 tokens with eager BERT attention, batches of 64. Against it, in
onnxruntime (as many intra-op threads as torch uses):

* ``ort``: the float32 ONNX graphs of ``plip.export`` (exact; texts in length-sorted
  batches padded to the longest caption, as ``encode_text`` does);
* ``int8``: the static QDQ image graph of ``plip export --quantize int8`` (layer3 / layer4
  int8, calibrated on 8 synthetic images) and the dynamically quantised text graph
  (``plip.export.quantize``), without the gate: the weights are random, so only speed
  means something here. Their accuracy is measured on the trained ``plip-tiny-synth``
  (the gate's figures, last lines).

Also batch-1 latency (what a tracker sees per detection; median of 20 calls), each
process's peak resident memory (VmHWM), and the ratios in process CPU time, which hold up
better than wall time when other jobs share the CPU. Every variant runs in a fresh process (see
``bench_encoding.py`` for why); captions are realistic (15-60 words). With ``--rounds N``
each variant runs in N fresh processes, interleaved, and the median is printed, with the
1-minute load average of the machine while it ran.

The last lines say what this CPU's kernels allow: the best matrix-product rate of torch
fp32, onnxruntime fp32 and onnxruntime int8 (dynamic, u8 x s8), measured in a fresh process
of the same run, against the rate (FLOPs per item from ``torch.utils.flop_counter`` times
items per second) at which the official forward runs, times the work a graph saves (text:
no padding at all and the [CLS]-only last layer). A graph whose every FLOP ran at its
runtime's best rate would reach about that ratio; each is printed beside the issue's target
(:data:`TARGETS`; "out of reach" when even :data:`MARGIN` more would not get there) with the
CPU's vector extensions (int8 products are 4x faster with AVX-512 VNNI than with AVX2's
u8 x s8 pairs).

    python benchmarks/bench_export.py [--texts 128] [--images 64] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_encoding import realistic_caption, timed  # noqa: E402

WORK = os.path.join(tempfile.gettempdir(), "plip-bench-export")
MODEL_DIR = os.path.join(WORK, "rn50")
VARIANTS = ["image-official", "image-ort", "image-int8", "text-official", "text-ort", "text-int8"]
#: Ratios to the official forward asked for by issue #14 (measured there on an AVX-512 VNNI CPU).
TARGETS = {"image-ort": 2.2, "image-int8": 6.0, "text-ort": 2.5, "text-int8": 5.0}


def latency(fn, calls: int = 20) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run_variant(variant: str, n_texts: int, n_images: int, out_file: str) -> None:
    """Time one variant in this fresh process; save its embeddings; print rate, latency, memory."""
    kind, how = variant.split("-")
    if how == "official":
        import plip

        model = plip.load(MODEL_DIR)
    else:
        from plip.export.runtime import make_session

        session = make_session(os.path.join(WORK, f"{kind}{'.int8' if how == 'int8' else ''}.onnx"))
        names = [i.name for i in session.get_inputs()]
    if kind == "image":
        images = torch.randn(n_images, 3, 256, 128, generator=torch.Generator().manual_seed(0))
        if how == "official":
            visual = model.visual.to(memory_format=torch.contiguous_format)

            def forward(batch):
                with torch.no_grad():
                    return F.normalize(visual(batch), dim=-1)
        else:
            def forward(batch):
                return torch.from_numpy(session.run(None, {names[0]: batch.numpy()})[0])

        def encode():
            return torch.cat([forward(b) for b in images.split(16)])

        one = images[:1]
        single = lambda: forward(one)  # noqa: E731
        count = n_images
    else:
        from plip.tokenizer import PLIPTokenizer

        rng = random.Random(0)
        captions = [realistic_caption(rng) for _ in range(n_texts)]
        tokenizer = PLIPTokenizer(max_length=64)
        if how == "official":
            model.text.encoder.config._attn_implementation = "eager"

            def forward(batch):
                with torch.no_grad():
                    return F.normalize(model.text(batch["input_ids"], batch["attention_mask"]).embedding, dim=-1)

            def encode():
                out = []
                for start in range(0, n_texts, 64):
                    out.append(forward(tokenizer.hf(captions[start:start + 64], padding="max_length", truncation=True,
                                                    max_length=64, return_tensors="pt")))
                return torch.cat(out)

            one = tokenizer.hf(captions[:1], padding="max_length", truncation=True, max_length=64, return_tensors="pt")
        else:
            def forward(batch):
                feeds = {names[0]: batch["input_ids"].numpy(), names[1]: batch["attention_mask"].numpy()}
                return torch.from_numpy(session.run(None, feeds)[0])

            def encode():  # tokenise, sort by length, pad each batch to its longest: encode_text's loop
                ids = tokenizer.encode(captions)
                order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
                out = torch.empty(len(ids), 768)
                for start in range(0, len(order), 64):
                    rows = order[start:start + 64]
                    out[torch.as_tensor(rows)] = forward(tokenizer.pad([ids[i] for i in rows]))
                return out

            one = tokenizer(captions[:1])
        single = lambda: forward(one)  # noqa: E731
        count = n_texts
    cpu_start = time.process_time()
    seconds, embeddings = timed(encode)
    cpu_seconds = (time.process_time() - cpu_start) / 3  # warm-up + 2 timed runs
    ms = latency(single)
    torch.save(embeddings, out_file)
    print(json.dumps({"rate": count / seconds, "cpu_rate": count / cpu_seconds, "latency_ms": ms,
                      "peak_mib": peak_rss_mib(), "load": os.getloadavg()[0]}))


def kernel_rates(out_file: str) -> None:
    """Best GFLOP/s of a float32 matrix product in torch and onnxruntime and of onnxruntime's
    dynamically quantised int8 product, over two shapes (square, and BERT's feed-forward at
    64 captions x 56 tokens); saved as JSON."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from plip.export.runtime import make_session

    logging.getLogger().setLevel(logging.ERROR)
    rates = {"torch fp32": 0.0, "onnxruntime fp32": 0.0, "onnxruntime int8": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for m, k, n in ((2048, 2048, 2048), (64 * 56, 768, 3072)):
            a, w = torch.randn(m, k), torch.randn(k, n)
            gflop = 2 * m * k * n / 1e9
            rates["torch fp32"] = max(rates["torch fp32"], gflop / timed(lambda: a @ w, repeat=5)[0])
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["a", "w"], ["y"])], "matmul",
                [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, k])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
                [numpy_helper.from_array(w.numpy(), "w")])
            fp32 = os.path.join(tmp, f"{k}.onnx")
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), fp32)
            int8 = os.path.join(tmp, f"{k}.int8.onnx")
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
            feed = {"a": a.numpy()}
            for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
                session = make_session(path)
                rates[name] = max(rates[name], gflop / timed(lambda: session.run(None, feed), repeat=5)[0])
    with open(out_file, "w", encoding="ascii") as out:
        json.dump(rates, out)


def vector_extensions() -> str:
    """The CPU's SIMD extensions that decide the int8 and fp32 kernel rates."""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return ", ".join(f if f in flags else f"no {f}" for f in wanted)


#: kernel rates move by about this much between runs of this benchmark
MARGIN = 1.1


def gflop(fn) -> float:
    """GFLOP of one call of ``fn`` (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def text_work(model, lengths: list[int], official: float) -> float:
    """``official`` (GFLOP of the 64-token text forward of one caption) over the exported
    graph's own work per caption of ``lengths`` (no padding at all, [CLS]-only last layer)."""
    ids = torch.full((1, 64), 2000)
    own = {n: gflop(lambda: model.text.embed(ids[:, :n], torch.ones_like(ids[:, :n]))) for n in set(lengths)}
    return official * len(lengths) / sum(own[n] for n in lengths)


def print_ceilings(results: dict[str, dict], kernels: dict[str, float], n_texts: int) -> None:
    """What this CPU's kernels allow for each variant's ratio, beside the issue's targets: the
    official forward's FLOPs per second against the runtime's best matrix-product rate, times
    the work the graph saves (text: padding and the [CLS]-only last layer)."""
    import plip
    from plip.tokenizer import PLIPTokenizer

    model = plip.load(MODEL_DIR)
    tokens = torch.full((1, 64), 2000)
    per_item = {"image": gflop(lambda: model.visual(torch.zeros(1, 3, 256, 128))),
                "text": gflop(lambda: model.text(tokens, torch.ones_like(tokens)))}
    rng = random.Random(0)
    lengths = [len(ids) for ids in PLIPTokenizer(max_length=64).encode([realistic_caption(rng) for _ in range(n_texts)])]
    work = {"image": 1.0, "text": text_work(model, lengths, per_item["text"])}
    print(f"ceilings ({vector_extensions()}): best matrix products "
          + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in kernels.items())
          + f"; the official 64-token text forward does x{work['text']:.2f} the text graph's work")
    for kind in ("image", "text"):
        official = per_item[kind] * results[f"{kind}-official"]["rate"]
        for how, kernel in (("ort", "onnxruntime fp32"), ("int8", "onnxruntime int8")):
            variant = f"{kind}-{how}"
            allowed = kernels[kernel] / official * work[kind]
            measured = results[variant]["rate"] / results[f"{kind}-official"]["rate"]
            verdict = "out of reach on this CPU" if allowed * MARGIN < TARGETS[variant] else "within reach"
            saved = f" x work {work[kind]:.2f}" if work[kind] != 1.0 else ""
            print(f"{variant:11} target x{TARGETS[variant]:.1f} | kernels allow ~x{allowed:.2f} ({kernel} "
                  f"{kernels[kernel]:.0f} / official {official:.0f} GFLOP/s{saved}) | measured x{measured:.2f} | {verdict}")


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: per address space, so unlike ru_maxrss it
    does not inherit the parent's peak across fork + exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def prepare() -> None:
    """rn50-size random model, its float32 ONNX towers and their int8 versions."""
    import plip
    from plip.export.calibration import synthetic_images
    from plip.export.quantize import quantize_image_onnx, quantize_text_onnx
    from plip import create_model
    from plip.models import PLIPConfig

    os.makedirs(WORK, exist_ok=True)
    torch.manual_seed(0)
    create_model(PLIPConfig.rn50()).save_pretrained(MODEL_DIR)
    model = plip.load(MODEL_DIR)
    tic = time.perf_counter()
    plip.export(model, WORK, tower="both", overwrite=True, log=None)
    exported = time.perf_counter() - tic
    tic = time.perf_counter()
    quantize_image_onnx(_p("image.onnx"), _p("image.int8.onnx"), synthetic_images(model, 8).numpy())
    quantize_text_onnx(_p("text.onnx"), _p("text.int8.onnx"))
    print(f"export of both towers {exported:.0f} s, int8 of both {time.perf_counter() - tic:.0f} s; file sizes (MB): "
          + ", ".join(f"{n} {os.path.getsize(_p(n)) / 1e6:.0f}" for n in
                      ("image.onnx", "image.int8.onnx", "text.onnx", "text.int8.onnx")))


def _p(name: str):
    from pathlib import Path

    return Path(WORK) / name


def tiny_gate() -> None:
    """The gate's figures for plip-tiny-synth (thresholds relaxed so both are printed)."""
    import plip

    model = plip.load("plip-tiny-synth")
    with tempfile.TemporaryDirectory() as tmp:
        plip.export(model, tmp, tower="both", quantize="int8", min_cosine=0.0, max_r1_drop=100.0,
                    log=lambda line: print("plip-tiny-synth " + line) if "gate" in line else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per variant (median is kept)")
    parser.add_argument("--variant", choices=VARIANTS + ["kernels"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant == "kernels":
        kernel_rates(args.out)
        return
    if args.variant:
        run_variant(args.variant, args.texts, args.images, args.out)
        return
    import onnxruntime
    import plip

    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    print(f"{cpu}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {torch.get_num_threads()} "
          f"threads, plip {plip.__version__}; {args.images} images 256x128, {args.texts} captions; "
          f"median of {args.rounds} fresh process(es); load average {os.getloadavg()[0]:.1f}")
    prepare()
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for variant in VARIANTS:
                out_file = os.path.join(tmp, f"{variant}.pt")
                command = [sys.executable, __file__, "--variant", variant, "--out", out_file,
                           "--texts", str(args.texts), "--images", str(args.images)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"{variant} failed:\n{done.stderr}")
                runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
        emb = {v: torch.load(os.path.join(tmp, f"{v}.pt"), weights_only=True) for v in VARIANTS}
        kernels_file = os.path.join(tmp, "kernels.json")
        subprocess.run([sys.executable, __file__, "--variant", "kernels", "--out", kernels_file], check=True)
        with open(kernels_file, encoding="ascii") as file:
            kernels = json.load(file)
    results = {v: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for v, rows in runs.items()}
    for kind, unit in (("image", "img/s"), ("text", "txt/s")):
        base = results[f"{kind}-official"]
        for variant in VARIANTS:
            if not variant.startswith(kind):
                continue
            r = results[variant]
            ref = emb[f"{kind}-official"]
            check = ("" if variant.endswith("official") else
                     f" | min cosine {(F.normalize(emb[variant], dim=-1) * ref).sum(-1).min():.4f}"
                     if variant.endswith("int8") else f" | max |diff| {(emb[variant] - ref).abs().max():.1e}")
            print(f"{variant:15} {r['rate']:7.1f} {unit} x{r['rate'] / base['rate']:5.2f} (CPU time "
                  f"x{r['cpu_rate'] / base['cpu_rate']:5.2f}) | batch-1 "
                  f"{r['latency_ms']:6.1f} ms (x{base['latency_ms'] / r['latency_ms']:.2f}) | peak {r['peak_mib']:5.0f} MiB"
                  f" | load {r['load']:4.1f}{check}")
    print_ceilings(results, kernels, args.texts)
    tiny_gate()


if __name__ == "__main__":
    main()
