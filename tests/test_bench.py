"""bench/run.py: the harness runs every benchmark at --smoke size, and its FLOP count is right."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402


def _op_flops(op):
    """2 * output elements * contracted size of a MatMul/BatchMatMul/Einsum op, else 0."""
    if op.type not in ("MatMul", "BatchMatMulV2", "Einsum"):
        return 0
    a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
    out = op.outputs[0].shape.as_list()
    if op.type == "MatMul":
        k = a[0] if op.get_attr("transpose_a") else a[1]
    elif op.type == "BatchMatMulV2":
        k = a[-2] if op.get_attr("adj_x") else a[-1]
    else:
        ins, res = op.get_attr("equation").decode().split("->")
        x, y = ins.split(",")
        dims = {**dict(zip(x, a)), **dict(zip(y, b))}
        k = int(np.prod([dims[c] for c in set(x) & set(y) if c not in res]))
    return 2 * int(np.prod(out)) * k


def graph_matmul_flops(model, frames, train=False):
    """Matmul FLOPs of the traced forward graph, or (train=True) of the ops a training step's loss
    and gradients depend on (what TensorFlow runs after pruning): an independent count to check the
    analytic one against."""
    import tensorflow as tf

    spec = (tf.TensorSpec([1, frames, 1152]), tf.TensorSpec([1], tf.int32))
    if not train:
        fn = tf.function(lambda x, n: model({"frames": x, "num_frames": n}, training=False))
        return sum(_op_flops(op) for op in fn.get_concrete_function(*spec).graph.get_operations())

    def step(x, n):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model({"frames": x, "num_frames": n}, training=True))
        return [loss] + tape.gradient(loss, model.trainable_variables)

    graph = tf.function(step).get_concrete_function(*spec).graph
    seen, todo = set(), [t.op for t in graph.outputs]
    while todo:  # the ops the outputs depend on
        op = todo.pop()
        if op.name not in seen:
            seen.add(op.name)
            todo.extend(t.op for t in op.inputs)
    return sum(_op_flops(op) for op in graph.get_operations() if op.name in seen)


@pytest.mark.parametrize("name", ["lfnl_netvlad_tiny", "lfnl_netrvlad_tiny", "efnl_netvlad_tiny",
                                  "soft_bof_8k_tiny"])
def test_forward_flops_match_the_traced_graph(name):
    from yt8m_kit.models import create_model

    model = create_model(name)
    assert bench.forward_flops(model, 7) == graph_matmul_flops(model, 7) > 0


@pytest.mark.parametrize("name", ["lfnl_netvlad_tiny", "efnl_netvlad_tiny", "soft_bof_4k_tiny"])
def test_train_flops_match_the_traced_training_step(name):
    """3x forward, less the gradients with respect to the input frames that autodiff never computes: none
    behind the input batch norm (its gamma and beta need the gradient of what reads its output), some
    without it (input_bn=False, the models before 2026-12-07)."""
    from yt8m_kit.models import create_model

    model = create_model(name)
    assert bench.train_flops(model, 7) == graph_matmul_flops(model, 7, train=True)
    assert bench.train_flops(model, 7) == 3 * bench.forward_flops(model, 7)
    raw = create_model(name, input_bn=False)
    assert bench.train_flops(raw, 7) == graph_matmul_flops(raw, 7, train=True)
    assert 2 * bench.forward_flops(raw, 7) < bench.train_flops(raw, 7) < 3 * bench.forward_flops(raw, 7)


def test_gru_flops_scale_with_frames():
    from yt8m_kit.models import create_model

    model = create_model("gru_tiny")
    u = model.get_layer("gru").units
    assert model.get_layer("gru").num_layers == 2
    per_frame = 2 * ((1152 + u) * 3 * u + (u + u) * 3 * u)  # two layers of 3 gates x u units
    assert bench.forward_flops(model, 10) - bench.forward_flops(model, 5) == 5 * per_frame


def test_summary_and_rate():
    s = bench.summary([3.0, 1.0, 2.0, 10.0, 4.0])
    assert s == {"median": 3.0, "min": 1.0, "max": 10.0, "runs": 5}
    r = bench.rate(8, [2.0, 4.0])
    assert (r["min"], r["max"]) == (2.0, 4.0)


def test_smoke_run_every_benchmark(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    rc = bench.main(["--smoke", "--runs", "2", "--json", "--results", str(results), "--work", str(tmp_path / "w")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"reader", "train", "inference", "plan", "_meta"}

    reader = out["reader"]
    for key in ("decode_videos_per_s", "raw_videos_per_s", "parse_only_videos_per_s"):
        assert reader[key]["runs"] == 2 and 0 < reader[key]["min"] <= reader[key]["median"] <= reader[key]["max"]
    assert reader["ratio"] == pytest.approx(reader["decode_videos_per_s"]["median"]
                                            / reader["raw_videos_per_s"]["median"])

    for name in bench.SMOKE["train_models"]:
        t = out["train"][name]
        assert t["examples_per_s"]["median"] > 0 and t["flops_per_s"] > 0 and t["utilisation"] > 0
        assert t["flops_per_s"] == pytest.approx(t["examples_per_s"]["median"] * t["train_flops_per_example"])
        assert t["xla"] is False  # the tiny models' registered trainer setting
    assert out["train"]["config"]["peak_flops_per_s"] > 0

    inf = out["inference"]
    assert inf["videos_per_s"]["median"] > 0 and inf["flops_per_s"] > 0 and inf["utilisation"] > 0
    mem = inf["memory"]["by_videos"]
    assert set(mem) == {str(n) for n in bench.SMOKE["memory_videos"]}
    assert all(row["peak_rss_mib"]["median"] > 50 for row in mem.values())

    plan = out["plan"]
    assert plan["search"] == "exhaustive" and plan["plans_scored"] > 0 and plan["best"]
    assert plan["total_s"]["median"] >= plan["search_s"]["median"] > 0

    text = results.read_text()
    assert text.startswith("# Benchmark results") and "| reader | ratio |" in text
    assert "| train | lfnl_netvlad_tiny.examples_per_s |" in text and out["_meta"]["commit"] in text


def test_bad_set_is_a_clear_error(capsys):
    assert bench.main(["--smoke", "--set", "nope=1", "--no-record"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not os.path.exists(BENCH / "nope")


def test_reader_variants_match_the_reader_and_reject_irregular_layouts(tmp_path, capsys):
    import reader_variants
    from yt8m_kit.data import synth

    reader_variants.main(["--videos", "12", "--runs", "1"])  # asserts every variant's frames equal the reader's
    out = capsys.readouterr().out
    assert all(f"\n{k} " in out for k in ("raw", "stream", "reader", "reader_uint8", "wire_numpy"))
    rng = np.random.default_rng(0)
    good = synth.frame_example("v", [1], rng.integers(0, 256, (4, 1024), dtype=np.uint8),
                               rng.integers(0, 256, (4, 128), dtype=np.uint8))
    assert reader_variants.walk(good)[b"rgb"][1] == 4
    short = synth.frame_example("v", [1], rng.integers(0, 256, (4, 1000), dtype=np.uint8),
                                rng.integers(0, 256, (4, 128), dtype=np.uint8))
    assert reader_variants.walk(short) is None
    with pytest.raises(ValueError, match="record 0"):
        reader_variants.layouts([short])


def test_paired_bootstrap_gap_and_standard_errors():
    """bench/paired_bootstrap.py scores with the toolkit's GAP; identical predictions differ by exactly 0."""
    import numpy as np

    from paired_bootstrap import paired_bootstrap
    from yt8m_kit.evaluate import metrics

    rng = np.random.default_rng(0)
    labels = [rng.choice(50, 2, replace=False) for _ in range(40)]
    a = {"ids": [str(i) for i in range(40)], "scores": rng.random((40, 50)).astype(np.float32), "labels": labels}
    b = dict(a, scores=(a["scores"] + rng.random((40, 50)) * 0.5).astype(np.float32))
    r = paired_bootstrap(a, b, resamples=30)
    assert r["gap_a"] == metrics.gap(a["scores"], labels) and r["gap_b"] == metrics.gap(b["scores"], labels)
    assert r["se_a"] > 0 and r["se_diff"] > 0
    same = paired_bootstrap(a, a, resamples=10)
    assert same["diff"] == 0 and same["se_diff"] == 0


def test_paired_bootstrap_reads_a_kaggle_csv(tmp_path):
    """B as a CSV (inference.py's output) scores as evaluate --predictions would: its top-20 pairs."""
    import numpy as np

    from paired_bootstrap import paired_bootstrap
    from yt8m_kit.kaggle.submission_csv import CsvWriter

    rng = np.random.default_rng(1)
    labels = [rng.choice(50, 2, replace=False) for _ in range(40)]
    a = {"ids": [f"v{i}" for i in range(40)], "scores": rng.random((40, 50)).astype(np.float32), "labels": labels}
    with CsvWriter(str(tmp_path / "b.csv")) as w:
        w.write(a["ids"][:30], a["scores"][:30])  # 10 videos missing: scored as empty rows
    r = paired_bootstrap(a, str(tmp_path / "b.csv"), resamples=20)
    from yt8m_kit.evaluate.cli import evaluate_csv

    expected = evaluate_csv(str(tmp_path / "b.csv"), a["ids"], labels, num_classes=50)["gap"]
    assert r["gap_b"] == pytest.approx(expected, abs=1e-12) and r["gap_b"] < r["gap_a"]
    assert r["se_diff"] > 0


def test_mix_nextvlad_bench_runs_and_reports_paired_differences(tmp_path, capsys):
    """bench/mix_nextvlad.py at a smoke size: every variant trains, and the table has the seed's row with
    the mixture's GAP and its paired differences."""
    import mix_nextvlad

    mix_nextvlad.main(["--videos", "24", "--steps", "2", "--seeds", "0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("| 0 |")]
    assert len(row) == 1 and row[0].count("±") == 4, out[-2000:]
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert all(0 <= float(g) <= 1 for g in cells[1:5])
