"""bench/run.py's benchmarks: reader, train, inference (with peak memory) and plan.

Each bench_* takes the sizes dict `s` (run.py's FULL or SMOKE, after --set) and the number of
timed runs, and returns a JSON-ready dict of {median, min, max, runs} summaries and ratios. The
heavy imports (TensorFlow, Keras, yt8m_kit modules) happen inside the functions. See bench/README.md.
"""

import gc
import os
import time

from flops import forward_flops, train_flops
from harness import log, rate, summary, time_runs

PAPER_MODELS = ("lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru")
MIB = 2**20


def bench_reader(s, runs, work):
    """Frame-level records -> model-ready batches (the trainer's reader) vs raw record reading."""
    import tensorflow as tf

    from yt8m_kit.data import dataset as data
    from yt8m_kit.data import native
    from yt8m_kit.data import synth

    out = os.path.join(work, "reader")
    synth.generate(out, "frame", s["reader_videos"], seed=0, shards=4, max_frames=s["reader_max_frames"],
                   min_frames=s["reader_min_frames"] or None, split_videos={"train": s["reader_videos"], "validate": 1, "test": 1})
    pattern = os.path.join(out, "train*.tfrecord")
    files = data.list_files(pattern)
    n, size = s["reader_videos"], sum(os.path.getsize(f) for f in files)

    def consume(ds, key=None):  # datasets are built once (tracing untimed) and iterated per run
        def go():
            got = sum(int(tf.shape(b if key is None else b[key])[0]) for b in data.iterate(ds, files))
            assert got == n, f"read {got} of {n} videos"
        return go

    # Raw reading with the reader's tf.data options (autotuning off, 2 batches prefetched): 10-20% faster
    # here than with autotuning, so the stricter reference.
    options = tf.data.Options()
    options.autotune.enabled = False
    raw_ds = tf.data.TFRecordDataset(files, num_parallel_reads=len(files)).batch(s["reader_batch"]).prefetch(2)
    raw_ds = raw_ds.with_options(options)
    # The floor under any reader built on tf's protobuf parser: parse the records (id, frame strings) and
    # nothing else, no checks, no decoding; same record stream as the reader's.
    spec = {"rgb": tf.io.RaggedFeature(tf.string), "audio": tf.io.RaggedFeature(tf.string)}
    parse_ds = (data.record_stream(files, shuffle=False, seed=0, epochs=1, shuffle_buffer=1, num_parallel_reads=None)
                .batch(s["reader_batch"]).map(
                    lambda _, b: tf.io.parse_sequence_example(
                        b, context_features={"id": tf.io.RaggedFeature(tf.string)}, sequence_features=spec)[1]["rgb"],
                    num_parallel_calls=data.PARALLEL_PARSES).prefetch(2))

    def sample(**kw):
        return data.make_dataset(pattern, s["reader_batch"], level="frame", frames="sample",
                                 num_samples=s["reader_samples"], **kw)

    fns = {"raw": consume(raw_ds), "parse_only": consume(parse_ds.with_options(options)),
           "decode": consume(sample(quantized=True), "frames"),  # the trainer's batches, unshuffled
           "decode_shuffled": consume(sample(quantized=True, shuffle=True), "frames"),  # and shuffled, as it reads
           "decode_float32": consume(sample(), "frames"),
           "decode_tf_parser": consume(sample(native=False), "frames"),
           "decode_all": consume(data.make_dataset(pattern, s["reader_batch"], level="frame"), "frames")}
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm the page cache and tf.data's autotuning
    for _ in range(runs):  # interleaved, so load changes hit all three alike
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    dec, raw_r, all_r = rate(n, times["decode"]), rate(n, times["raw"]), rate(n, times["decode_all"])
    parse_r, f32_r, tfp_r = rate(n, times["parse_only"]), rate(n, times["decode_float32"]), rate(n, times["decode_tf_parser"])
    shuf_r = rate(n, times["decode_shuffled"])
    return {"decode_videos_per_s": dec, "raw_videos_per_s": raw_r, "decode_all_videos_per_s": all_r,
            "decode_float32_videos_per_s": f32_r, "decode_tf_parser_videos_per_s": tfp_r,
            "decode_shuffled_videos_per_s": shuf_r, "ratio_shuffled": shuf_r["median"] / raw_r["median"],
            "ratio_float32": f32_r["median"] / raw_r["median"], "ratio_tf_parser": tfp_r["median"] / raw_r["median"],
            "parse_only_videos_per_s": parse_r, "ratio": dec["median"] / raw_r["median"],
            "ratio_all": all_r["median"] / raw_r["median"], "ratio_parse_only": parse_r["median"] / raw_r["median"],
            "config": {"videos": n, "mean_kib_per_video": size / n / 1024, "batch": s["reader_batch"],
                       "lengths": (f"uniform {s['reader_min_frames']}-{s['reader_max_frames']} frames"
                                   if s["reader_min_frames"] else f"synth mixed profile, max {s['reader_max_frames']}"),
                       "native": native.available(),
                       "frames": (f"decode: sample {s['reader_samples']}, uint8 (the trainer's batches, dequantised in "
                                  "its step), unshuffled; decode_shuffled: the same through a 1,024-record shuffle buffer; decode_float32: the same dequantised; decode_tf_parser: float32 through "
                                  "tf's parser (native=False, the fallback); decode_all: frames='all', float32")}}


def _frame_batch(batch, frames, seed=0):
    import tensorflow as tf

    from yt8m_kit import FEATURE_DIM

    g = tf.random.Generator.from_seed(seed)
    return {"frames": g.uniform((batch, frames, FEATURE_DIM), -2.0, 2.0),
            "num_frames": tf.fill([batch], frames)}


def bench_train(s, runs, peak):
    """Training steps (yt8m_kit.train.loop's step: forward, BCE, gradients, clipping, Adam) per model."""
    import keras
    import tensorflow as tf

    from yt8m_kit import NUM_CLASSES
    from yt8m_kit.train import trainer
    from yt8m_kit.train.config import TrainConfig, resolve_xla
    from yt8m_kit.train.loop import make_train_step

    results = {}
    batch, frames, steps = s["train_batch"], s["train_frames"], s["train_steps"]
    inputs = _frame_batch(batch, frames)
    labels = tf.cast(tf.random.uniform((batch, NUM_CLASSES)) < 3 / NUM_CLASSES, tf.float32)
    for name in s["train_models"]:
        xla = resolve_xla(name, None if s["train_xla"] == "registered" else s["train_xla"] in ("1", "true", "yes"),
                                "default")
        log(f"train: {name} (batch {batch}, {frames} frames, {steps} step(s) per run, xla {xla})")
        config = TrainConfig(model=name, train="", out="", steps=1, batch_size=batch, frames=frames, xla=xla,
                                   precision=s["train_precision"])
        strategy = tf.distribute.get_strategy()
        model, optimizer = trainer.build(config, strategy)
        step = make_train_step(strategy, model, optimizer, config)
        flops = train_flops(model, frames)

        def run():
            for _ in range(steps):
                loss = step(inputs, labels)
            loss.numpy()

        ex = rate(batch * steps, time_runs(run, runs))
        results[name] = {"examples_per_s": ex, "flops_per_s": ex["median"] * flops,
                         "utilisation": ex["median"] * flops / peak, "train_flops_per_example": flops,
                         "params": int(model.count_params()), "xla": xla}
        log(f"  {ex['median']:.2f} examples/s, {ex['median'] * flops / 1e9:.1f} GFLOP/s, "
            f"utilisation {ex['median'] * flops / peak:.2f}")
        del model, optimizer, step
        keras.backend.clear_session()
        gc.collect()
    results["config"] = {"batch": batch, "frames": frames, "steps_per_run": steps, "precision": s["train_precision"],
                         "xla": s["train_xla"] + " (true/false/registered: the model's trainer setting)", "peak_flops_per_s": peak}
    return results


def bench_inference(s, runs, peaks, work):
    """The one-graph ensemble through predict.make_step (fused repeats), plus peak memory."""
    import keras

    from yt8m_kit.ensemble import artifact as ensemble
    from yt8m_kit.evaluate import predict_loop as predict

    precision, batch, repeats, frames = s["infer_precision"], s["infer_batch"], s["infer_repeats"], s["infer_frames"]
    specs = [{"model": m, "overrides": {}, "precision": precision, "run": m} for m in s["infer_models"]]
    memory = bench_memory(s, work)  # first: fork/exec from a small process
    log(f"inference: ensemble of {len(specs)} ({precision}), {batch} videos x {repeats} repeats x {frames} frames")
    model = ensemble.build_ensemble(specs)
    flops = sum(forward_flops(layer.member(), frames) for layer in ensemble.ensemble_members(model))
    xla = s["infer_xla"]
    step = predict.make_step(model, xla=xla, model_level_="frame", data_level="frame", repeats=repeats, seed=0,
                             num_samples=frames, all_frames=False)
    import tensorflow as tf

    b = dict(_frame_batch(batch, frames), id=tf.constant([f"v{i}" for i in range(batch)]))
    videos = rate(batch, time_runs(lambda: step(b).numpy(), runs))
    video_flops = flops * repeats
    peak = peaks[precision]
    out = {"videos_per_s": videos, "flops_per_s": videos["median"] * video_flops,
           "utilisation": videos["median"] * video_flops / peak, "flops_per_video": video_flops,
           "config": {"members": list(s["infer_models"]), "precision": precision, "batch": batch,
                      "repeats": repeats, "frames": frames, "peak_flops_per_s": peak, "xla": xla}}
    del model, step
    keras.backend.clear_session()
    gc.collect()
    out["memory"] = memory
    return out


def peak_rss(run_dir, pattern, output, num_samples):
    """(peak RSS bytes, wall s) of `python inference.py` (repeats 10, batch 32) in a fresh process,
    from the child's VmHWM (bench/inference_memory.measure)."""
    import inference_memory as im

    return im.measure(run_dir, pattern, output, repeats=10, batch_size=32, num_samples=num_samples)


def bench_memory(s, work):
    """Peak RSS of `python inference.py` at each test-set size (bench/inference_memory.py)."""
    import inference_memory as im

    run_dir = im.make_checkpoint(os.path.join(work, "mem_run"), s["memory_model"])
    rows = {}
    for n in s["memory_videos"]:
        log(f"inference memory: {n} videos ({s['memory_model']}, <= {s['memory_max_frames']} frames)")
        pattern = im.make_data(os.path.join(work, f"mem_{n}"), n, max_frames=s["memory_max_frames"],
                               videos_per_shard=300, seed=n)
        got = [peak_rss(run_dir, pattern, os.path.join(work, f"mem_{n}.csv"), s["memory_samples"])
               for _ in range(s["memory_runs"])]
        rows[str(n)] = {"peak_rss_mib": summary([r / MIB for r, _ in got]),
                        "videos_per_s": summary([n / w for _, w in got])}
    peaks = [r["peak_rss_mib"]["median"] for r in rows.values()]
    return {"by_videos": rows, "spread": max(peaks) / min(peaks) - 1,
            "config": {"model": s["memory_model"], "repeats": 10, "batch": 32, "max_frames": s["memory_max_frames"],
                       "num_samples": s["memory_samples"], "runs": s["memory_runs"]}}


def synthetic_candidates(n_videos, seed=0):
    """Six runs x three precisions with paper sizes and correlated synthetic scores (N, 3862)."""
    import numpy as np

    from yt8m_kit import NUM_CLASSES
    from yt8m_kit.ensemble import search as plan
    from yt8m_kit.models import model_info

    rng = np.random.default_rng(seed)
    labels = [rng.choice(NUM_CLASSES, rng.integers(1, 6), replace=False) for _ in range(n_videos)]
    signal = rng.standard_normal((n_videos, NUM_CLASSES), dtype=np.float32) - 4.0
    for i, t in enumerate(labels):
        signal[i, t] += 3.0
    cands, scores = [], []
    per_weight = {"float32": 4, "bfloat16": 2, "int8": 1}
    for m in PAPER_MODELS:
        run_noise = rng.standard_normal(signal.shape, dtype=np.float32)
        for p in plan.PRECISIONS:
            noise = run_noise + 0.05 * rng.standard_normal(signal.shape, dtype=np.float32)
            scores.append(1.0 / (1.0 + np.exp(-(signal + noise))))
            size = int(model_info(m)["paper_mib"] * MIB / 4 * per_weight[p])
            cands.append(plan.Candidate(run=m, model=m, precision=p, bytes=size))
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in labels])])
    return cands, scores, indptr, np.concatenate(labels)


def bench_plan(s, runs):
    """plan.SubsetGap preparation + plan.search (exhaustive, 4,095 plans scored if in budget)."""
    from yt8m_kit.ensemble import search as plan
    from yt8m_kit.fileio import parse_size

    cands, scores, indptr, indices = synthetic_candidates(s["plan_videos"])
    budget = parse_size(s["plan_budget"])
    prep, search, scored = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        scorer = plan.SubsetGap(scores, indptr, indices)
        t1 = time.perf_counter()
        best, plans, how = plan.search(cands, scorer.gap, budget)
        prep.append(t1 - t0)
        search.append(time.perf_counter() - t1)
        scored.append(len(plans))
    return {"total_s": summary([a + b for a, b in zip(prep, search)]), "prepare_s": summary(prep),
            "search_s": summary(search), "ms_per_plan": summary([1e3 * t / p for t, p in zip(search, scored)]),
            "plans_scored": scored[0], "search": how, "best": [cands[m].run + ":" + cands[m].precision
                                                               for m in best.members] if best else None,
            "config": {"videos": s["plan_videos"], "candidates": len(cands), "budget": s["plan_budget"]}}
