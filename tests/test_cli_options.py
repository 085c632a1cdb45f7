"""--allow-2017 / --skip-bad in train, evaluate and inference; inference's fingerprinted id set.

Small hand-made TFRecords: 2017-format frame- and video-level files (key 'video_id', labels up to
4715), and files with a malformed record in the middle (record 3) plus a truncated tail.
"""

import json
import struct
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kit.evaluate import cli as evaluate
from yt8m_kit.kaggle import inference_job as infer
from yt8m_kit.kaggle import submission_csv as submission
from yt8m_kit.data import synth
from yt8m_kit.train import cli as train
from yt8m_kit.data import ids as ids_lib
from yt8m_kit.kaggle.submission_csv import CsvWriter, IdSet, id_fingerprints, validate_csv

FRAME_MODEL, VIDEO_MODEL = "soft_bof_4k_tiny", "video_logistic"
N = 12  # videos per file
BAD_RECORD = 3  # the malformed record in the middle of the bad files
FAST = ["--num-samples", "4", "--batch-size", "8", "--repeats", "1", "--quiet"]


def _frame_records(prefix, n, rng, labels=lambda i: [i % 5]):
    return [synth.frame_example(f"{prefix}{i}", labels(i), rng.integers(0, 256, (4, 1024), dtype=np.uint8),
                                rng.integers(0, 256, (4, 128), dtype=np.uint8)) for i in range(n)]


def _video_records(prefix, n, rng, id_key="id", labels=lambda i: [i % 5]):
    return [synth.video_example(f"{prefix}{i}", labels(i), rng.normal(size=1024), rng.normal(size=128),
                                id_key=id_key) for i in range(n)]


def _as_2017(serialized):
    """A 2018 SequenceExample with its context key 'id' renamed 'video_id' (the 2017 schema)."""
    seq = tf.train.SequenceExample.FromString(serialized)
    ctx = seq.context.feature
    ctx["video_id"].CopyFrom(ctx["id"])
    del ctx["id"]
    return seq.SerializeToString()


def _truncate_last_record(path):
    """Cut the file 20 bytes into its last record's payload (a download that stopped early)."""
    blob, pos, last = path.read_bytes(), 0, 0
    while pos < len(blob):
        last = pos
        pos += 16 + struct.unpack("<Q", blob[pos:pos + 8])[0]
    path.write_bytes(blob[:last + 12 + 20])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("cli_options")
    recs = _frame_records("f", N, rng)
    recs[BAD_RECORD] = synth.frame_example("badrgb", [1], rng.integers(0, 256, (4, 1000), dtype=np.uint8),
                                           rng.integers(0, 256, (4, 128), dtype=np.uint8))
    synth.write_records(d / "frame_bad.tfrecord", recs)
    _truncate_last_record(d / "frame_bad.tfrecord")
    synth.write_records(d / "frame_2017.tfrecord",
                        [_as_2017(r) for r in _frame_records("o", N, rng, labels=lambda i: [4700 - i])])
    vrecs = _video_records("v", N, rng)
    vrecs[BAD_RECORD] = synth.video_example("short", [1], np.zeros(512), np.zeros(128))
    synth.write_records(d / "video_bad.tfrecord", vrecs)
    _truncate_last_record(d / "video_bad.tfrecord")
    synth.write_records(d / "video_2017.tfrecord",
                        _video_records("w", N, rng, id_key="video_id", labels=lambda i: [4700 + i % 3, i]))
    return {k: str(d / f"{k}.tfrecord") for k in ("frame_bad", "frame_2017", "video_bad", "video_2017")} | {"dir": d}


@pytest.fixture(scope="module")
def frame_ckpt(files):
    from yt8m_kit.train.checkpoint import save_checkpoint
    from yt8m_kit.models import create_model

    run_dir = files["dir"] / "frame_run"
    save_checkpoint(run_dir, 1, create_model(FRAME_MODEL),
                    {"model": FRAME_MODEL, "overrides": {}, "level": "frame"})
    return str(run_dir)


def _run(main, argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _csv_ids(path):
    return [line.split(",")[0] for line in open(path).read().splitlines()[1:]]


# ---------------------------------------------------------------- inference

def test_inference_bad_records_fail_then_skip_loudly(files, frame_ckpt, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    argv = ["--model", frame_ckpt, "--input", files["frame_bad"], "--output", str(out), "--dry-run", *FAST]
    rc, _, err = _run(infer.main, argv, capsys)
    assert rc == 2 and files["frame_bad"] in err and "record" in err and "--skip-bad" in err
    assert not out.exists()  # no partial CSV
    rc, _, err = _run(infer.main, argv + ["--skip-bad"], capsys)
    assert rc == 0, err
    ids = _csv_ids(out)
    # record 3 malformed, the last record truncated: N - 2 videos written, the rest absent
    assert len(ids) == N - 2 and "badrgb" not in ids and f"f{N - 1}" not in ids
    assert sorted(ids) == sorted(f"f{i}" for i in range(N - 1) if i != BAD_RECORD)
    assert "ABSENT" in err and "skipped 2 bad records" in err
    assert f"{files['frame_bad']} record {BAD_RECORD}: rgb frame has the wrong byte length" in err
    assert f"{files['frame_bad']} record {N - 1}: unreadable" in err
    assert "valid" in err  # the --dry-run validation passed on the shorter CSV


def test_inference_2017_files(files, frame_ckpt, tmp_path, capsys):
    out = tmp_path / "old.csv"
    argv = ["--model", frame_ckpt, "--input", files["frame_2017"], "--output", str(out), "--dry-run", *FAST]
    rc, _, err = _run(infer.main, argv, capsys)
    assert rc == 2 and "2017" in err and "--allow-2017" in err and files["frame_2017"] in err
    assert not out.exists()
    rc, _, err = _run(infer.main, argv + ["--allow-2017"], capsys)
    assert rc == 0, err
    assert sorted(_csv_ids(out)) == sorted(f"o{i}" for i in range(N))  # read from key 'video_id'
    labels = [int(x) for row in open(out).read().splitlines()[1:] for x in row.split(",")[1].split()[0::2]]
    assert labels and max(labels) < 3862  # 2018 class indices, whatever the data's vocabulary


def test_inference_xla_switch(files, frame_ckpt, tmp_path, capsys):
    argv = ["--input", files["frame_2017"], "--allow-2017", "--dry-run", "--model", frame_ckpt, *FAST]
    rows = {}
    for flag in ("", "--xla"):
        out = tmp_path / f"x{flag}.csv"
        rc, _, err = _run(infer.main, argv + ["--output", str(out)] + ([flag] if flag else []), capsys)
        assert rc == 0, err
        assert (", xla" in err) == bool(flag)
        rows[flag] = sorted(open(out).read().splitlines())
    assert [r.split(",")[0] for r in rows["--xla"]] == [r.split(",")[0] for r in rows[""]]


def test_cli_help_documents_options():
    for parser in (infer.build_parser(), evaluate.build_parser(), train.build_parser()):
        text = " ".join(parser.format_help().split())
        assert "--allow-2017" in text and "--skip-bad" in text and "video_id" in text
    assert "ABSENT" in " ".join(infer.build_parser().format_help().split())


# ---------------------------------------------------------------- evaluate

def test_evaluate_checkpoint_skip_bad_and_2017_mismatch(files, frame_ckpt, capsys):
    argv = ["--checkpoint", frame_ckpt, "--data", files["frame_bad"], "--batch-size", "8", "--json"]
    rc, _, err = _run(evaluate.main, argv, capsys)
    assert rc == 2 and files["frame_bad"] in err and "record" in err and "--skip-bad" in err
    rc, out, err = _run(evaluate.main, argv + ["--skip-bad"], capsys)
    assert rc == 0, err
    result = json.loads(out)
    assert result["videos"] == N - 2 and result["skipped_records"] == 2
    assert f"record {BAD_RECORD}" in err and "not scored" in err
    rc, _, err = _run(evaluate.main, ["--checkpoint", frame_ckpt, "--data", files["frame_2017"]], capsys)
    assert rc == 2 and "--allow-2017" in err
    rc, _, err = _run(evaluate.main, ["--checkpoint", frame_ckpt, "--data", files["frame_2017"],
                                      "--allow-2017"], capsys)
    assert rc == 2 and "3862 classes" in err and "4716 classes" in err and "meaningless" in err


def test_evaluate_csv_2017_vocabulary(files, tmp_path, capsys):
    csv = tmp_path / "perfect.csv"  # each video's own 2017 labels, first with the highest confidence
    rows = [f"w{i},{4700 + i % 3} 0.900000 {i} 0.800000" for i in range(N)]
    csv.write_text("VideoId,LabelConfidencePairs\n" + "\n".join(rows) + "\n")
    argv = ["--predictions", str(csv), "--data", files["video_2017"], "--json"]
    rc, _, err = _run(evaluate.main, argv, capsys)
    assert rc == 2 and "2017" in err and "--allow-2017" in err
    rc, out, err = _run(evaluate.main, argv + ["--allow-2017"], capsys)
    assert rc == 0, err
    result = json.loads(out)
    assert result["gap"] == pytest.approx(1.0) and result["vocabulary"] == 2017 and result["videos"] == N
    assert "2017 class indices" in err
    rc, _, err = _run(evaluate.main, argv + ["--allow-2017", "--skip-bad"], capsys)
    assert rc == 2 and "--skip-bad only applies with --checkpoint" in err


# ---------------------------------------------------------------- train

def test_train_skip_bad_and_2017_refusal(files, tmp_path, capsys):
    base = ["--model", VIDEO_MODEL, "--steps", "3", "--batch-size", "4", "--checkpoint-every", "3",
            "--no-progress"]
    rc, _, err = _run(train.main, base + ["--train", files["video_bad"], "--out", str(tmp_path / "a")], capsys)
    assert rc == 2 and files["video_bad"] in err and "record" in err
    rc, out, err = _run(train.main, base + ["--train", files["video_bad"], "--out", str(tmp_path / "a"),
                                            "--valid", files["video_bad"], "--skip-bad"], capsys)  # resumes
    assert rc == 0, err
    result = json.loads(out)
    assert result["step"] == 3 and result["skipped_records"] >= 4  # train: once per pass; valid: 2
    assert result["valid"]["videos"] == N - 2
    for name in ("--train", "--valid"):
        line = next(x for x in err.splitlines() if x.startswith(f"warning: {name}: skipped"))
        assert f"record {BAD_RECORD}: mean_rgb has the wrong number of floats" in line
        assert f"record {N - 1}: unreadable" in line
    rc, _, err = _run(train.main, base + ["--train", files["video_2017"], "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and "2017" in err and "--allow-2017" in err
    rc, _, err = _run(train.main, base + ["--train", files["video_2017"], "--out", str(tmp_path / "b"),
                                          "--allow-2017"], capsys)
    assert rc == 2 and "4716 classes" in err and "3862" in err
    assert not (tmp_path / "b").exists()  # refused before any run directory was written


# ---------------------------------------------------------------- bounded id memory

def test_id_set_membership_across_merges(monkeypatch):
    monkeypatch.setattr(IdSet, "MERGE_AT", 8)  # force many merges of the recent set into the array
    ids = [f"id{i}" for i in range(100)]
    s = IdSet(ids[:50])
    for i in range(50, 100, 7):
        s.add(ids[i:i + 7])
    assert len(s) == 100 and s.fingerprints().size >= 92  # mostly merged into the sorted array
    assert s.contains(id_fingerprints(ids)).all()
    assert not s.contains(id_fingerprints(["id100", "x", b"id-1"])).any()
    assert s.contains(id_fingerprints([b"id7"]))[0]  # bytes and str ids are the same id
    assert np.all(np.diff(s.fingerprints().astype(np.float64)) > 0)


def _traced(fn):
    """(fn(), peak bytes Python and numpy allocated while it ran)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _write_and_validate(path, n, batch=500):
    """Peak traced bytes of writing n rows (ids made per batch, as inference gets them) and of
    validating the CSV against the writer's ids; checks the results on the way."""
    idx, val = np.full((batch, 1), 5), np.full((batch, 1), 0.5)

    def write():
        with CsvWriter(path) as writer:
            for start in range(0, n, batch):
                writer.write_topk([f"{i:06x}" for i in range(start, start + batch)], idx, val)
        return writer

    writer, peak_write = _traced(write)
    assert isinstance(writer.ids, IdSet) and len(writer.ids) == n and writer.rows == n
    assert writer.ids.nbytes <= 8 * n + 120 * IdSet.MERGE_AT
    writer.ids.fingerprints()  # merged before tracing: the expected side is not validation's cost
    summary, peak_validate = _traced(lambda: validate_csv(path, expected_ids=writer.ids))
    assert summary["rows"] == n and summary["pairs"] == n
    return peak_write, peak_validate


def test_writer_and_validation_memory_grows_by_bytes_per_id(tmp_path):
    small, large = 10_000, 40_000
    w1, v1 = _write_and_validate(tmp_path / "small.csv", small)
    w2, v2 = _write_and_validate(tmp_path / "large.csv", large)
    per_id_write, per_id_validate = (w2 - w1) / (large - small), (v2 - v1) / (large - small)
    # A list of the ids costs 8 + 55 bytes an id (str object), the old dict of validate_csv ~110;
    # fingerprints cost 8 (+ 8 transient while merging or sorting, + 1 for the duplicate mask).
    assert per_id_write < 40 and per_id_validate < 40, (per_id_write, per_id_validate)


def test_validation_against_an_id_set_still_catches_everything(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("VideoId,LabelConfidencePairs\na,1 0.5\nb,\nc,2 0.4\nd,\n")
    assert validate_csv(path, expected_ids=IdSet(["d", "c", "b", "a"]))["rows"] == 4
    with pytest.raises(submission.DataError, match="1 expected video.*missing"):
        validate_csv(path, expected_ids=IdSet(["a", "b", "c", "d", "e"]))
    with pytest.raises(submission.DataError, match=r"2 video\(s\) not in the expected set.*\['b', 'd'\]"):
        validate_csv(path, expected_ids=IdSet(["a", "c"]))
    path.write_text("VideoId,LabelConfidencePairs\na,1 0.5\nb,\nc,2 0.4\nb,3 0.1\n")
    with pytest.raises(submission.DataError, match=r"line 5.*'b' appears twice \(first on line 3\)"):
        validate_csv(path)
    with pytest.raises(submission.DataError, match=r"'a' written twice \(first on line 2\)"):
        with CsvWriter(tmp_path / "w.csv") as writer:
            writer.write_topk(["a", "b"], [[1], [2]], [[0.5], [0.5]])
            writer.write_topk(["c", "a"], [[1], [2]], [[0.5], [0.5]])
    assert not (tmp_path / "w.csv").exists()


def test_fingerprint_collisions_never_reject_distinct_ids(tmp_path, monkeypatch):
    for module in (submission, ids_lib):  # every id collides
        monkeypatch.setattr(module, "fingerprint", lambda text: 7)
    path = tmp_path / "c.csv"
    with CsvWriter(path) as writer:  # distinct ids: accepted, after checking the exact ids on disk
        writer.write_topk(["a", "b"], [[1], [2]], [[0.5], [0.5]])
        writer.write_row("c", [3], [0.2])
    assert validate_csv(path)["rows"] == 3
    with pytest.raises(submission.DataError, match="'b' written twice"):
        with CsvWriter(tmp_path / "d.csv") as writer:
            writer.write_topk(["a", "b"], [[1], [2]], [[0.5], [0.5]])
            writer.write_row("b", [3], [0.2])
    path.write_text("VideoId,LabelConfidencePairs\na,\nb,\na,\n")
    with pytest.raises(submission.DataError, match=r"'a' appears twice \(first on line 2\)"):
        validate_csv(path)


# ---------------------------------------------------------------- one rule for video ids

def test_ids_that_cannot_be_csv_fields_are_bad_records_everywhere(tmp_path, capsys):
    """A non-UTF-8 id (record 2) and an id with a comma (record 5): inspect, train, evaluate and inference
    all name the file, record and reason; --skip-bad leaves exactly those two out."""
    from yt8m_kit.data import inspect as inspect_cli
    from yt8m_kit.models import create_model
    from yt8m_kit.train.checkpoint import save_checkpoint

    rng = np.random.default_rng(3)
    for level, make in (("video", _video_records), ("frame", _frame_records)):
        recs = make("ok", N, rng)
        bad_utf8, comma = b"id\xff\xfe", "a,b"
        if level == "video":
            recs[2] = synth.video_example(bad_utf8, [1], rng.normal(size=1024), rng.normal(size=128))
            recs[5] = synth.video_example(comma, [1], rng.normal(size=1024), rng.normal(size=128))
        else:
            recs[2] = synth.frame_example(bad_utf8, [1], rng.integers(0, 256, (4, 1024), dtype=np.uint8),
                                          rng.integers(0, 256, (4, 128), dtype=np.uint8))
            recs[5] = synth.frame_example(comma, [1], rng.integers(0, 256, (4, 1024), dtype=np.uint8),
                                          rng.integers(0, 256, (4, 128), dtype=np.uint8))
        path = str(tmp_path / f"{level}_ids.tfrecord")
        synth.write_records(path, recs)
        name = VIDEO_MODEL if level == "video" else FRAME_MODEL
        ckpt = str(tmp_path / f"{level}_run")
        save_checkpoint(ckpt, 1, create_model(name), {"model": name, "overrides": {}, "level": level})

        rc, out, err = _run(inspect_cli.main, [path], capsys)
        assert rc != 0 and "record 2" in out + err and "UTF-8" in out + err, out + err
        assert "record 5" in out + err and "comma" in out + err

        rc, _, err = _run(evaluate.main, ["--checkpoint", ckpt, "--data", path, "--num-samples", "4"], capsys)
        assert rc == 2 and path in err and "record 2" in err and "not valid UTF-8" in err, err

        csv = tmp_path / f"{level}.csv"
        argv = ["--model", ckpt, "--input", path, "--output", str(csv), *FAST]
        rc, _, err = _run(infer.main, argv, capsys)
        assert rc == 2 and path in err and "record 2" in err and "Traceback" not in err, err
        rc, _, err = _run(infer.main, argv + ["--skip-bad"], capsys)
        assert rc == 0, err
        assert sorted(_csv_ids(csv)) == sorted(f"ok{i}" for i in range(N) if i not in (2, 5))
        assert f"{path} record 5: video id is empty or holds a comma" in err

        if level == "video":
            rc, _, err = _run(train.main, ["--model", VIDEO_MODEL, "--train", path, "--out", str(tmp_path / "t"),
                                           "--steps", "2", "--batch-size", "4", "--no-progress"], capsys)
            # training shuffles: whichever bad record comes first is named
            assert rc == 2 and path in err and ("record 2: video id is not valid UTF-8" in err
                                                or "record 5: video id is empty or holds a comma" in err), err


def test_a_video_twice_across_shards_is_refused_naming_both_records(tmp_path, capsys):
    from yt8m_kit.models import create_model
    from yt8m_kit.train.checkpoint import save_checkpoint

    rng = np.random.default_rng(4)
    a = _video_records("v", 6, rng)
    b = _video_records("w", 6, rng)
    b[1] = synth.video_example("v3", [2], rng.normal(size=1024), rng.normal(size=128))  # v3 is also a's record 3
    synth.write_records(tmp_path / "part-a.tfrecord", a)
    synth.write_records(tmp_path / "part-b.tfrecord", b)
    pattern = str(tmp_path / "part-*.tfrecord")
    ckpt = str(tmp_path / "run")
    save_checkpoint(ckpt, 1, create_model(VIDEO_MODEL), {"model": VIDEO_MODEL, "overrides": {}, "level": "video"})
    named = f"{tmp_path / 'part-b.tfrecord'}, record 1"

    rc, _, err = _run(evaluate.main, ["--checkpoint", ckpt, "--data", pattern], capsys)
    assert rc == 2 and "duplicate video id" in err and named in err and "part-a.tfrecord record 3" in err, err
    csv = tmp_path / "out.csv"
    rc, _, err = _run(infer.main, ["--model", ckpt, "--input", pattern, "--output", str(csv), *FAST], capsys)
    assert rc == 2 and named in err and "part-a.tfrecord record 3" in err and not csv.exists(), err
    assert f"file {csv}" not in err  # the input is at fault, not the CSV never written
    rc, _, err = _run(train.main, ["--model", VIDEO_MODEL, "--train", pattern, "--out", str(tmp_path / "t"),
                                   "--steps", "2", "--batch-size", "4", "--no-progress"], capsys)
    assert rc == 2 and named in err, err
    rc, _, err = _run(train.main, ["--model", VIDEO_MODEL, "--train", str(tmp_path / "part-a.tfrecord"),
                                   "--valid", pattern, "--out", str(tmp_path / "t2"), "--steps", "2",
                                   "--batch-size", "4", "--no-progress"], capsys)
    assert rc == 2 and named in err, err


def test_skip_bad_counts_every_record_a_crc_error_loses(tmp_path, capsys):
    """A CRC error in record 4 of 10 ends the file for the reader: 6 records are lost, not 1."""
    from yt8m_kit.models import create_model
    from yt8m_kit.train.checkpoint import save_checkpoint

    rng = np.random.default_rng(5)
    path = tmp_path / "crc.tfrecord"
    synth.write_records(path, _video_records("c", 10, rng))
    blob, pos = bytearray(path.read_bytes()), 0
    for _ in range(4):  # to record 4's header
        pos += 16 + struct.unpack("<Q", blob[pos:pos + 8])[0]
    blob[pos + 12 + 40] ^= 0xFF  # one payload byte of record 4: its CRC no longer matches
    path.write_bytes(bytes(blob))
    ckpt = str(tmp_path / "run")
    save_checkpoint(ckpt, 1, create_model(VIDEO_MODEL), {"model": VIDEO_MODEL, "overrides": {}, "level": "video"})
    csv = tmp_path / "out.csv"
    rc, _, err = _run(infer.main, ["--model", ckpt, "--input", str(path), "--output", str(csv), "--skip-bad",
                                   *FAST], capsys)
    assert rc == 0, err
    assert sorted(_csv_ids(csv)) == [f"c{i}" for i in range(4)]
    assert "skipped 6 bad records" in err and "6 record(s) lost" in err, err
