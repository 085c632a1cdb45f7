"""inspect CLI: counts, JSON keys, corrupt records located, exit status."""

import json
import struct

from yt8m_kit.data import dataset as data
from yt8m_kit.data.inspect import inspect_files, main


def test_inspect_generated_frame_data(frame_data, capsys):
    assert main([f"{frame_data}/train*.tfrecord", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"files", "videos", "level", "version", "labels_per_video", "corrupt"} <= set(r)
    summary = json.loads((frame_data / "summary.json").read_text())["splits"]["train"]
    assert (r["files"], r["videos"], r["frames"], r["level"], r["version"]) == (2, 120, summary["frames"], "frame", 2018)
    assert abs(r["labels_per_video"] - summary["labels"] / 120) < 1e-3 and r["corrupt"] == []


def test_inspect_real_counts_match_reader(real_video_dir, capsys):
    files = sorted(real_video_dir.glob("*.tfrecord"))[:2]
    pattern = ",".join(map(str, files))
    r = inspect_files(pattern)
    ids, labels = data.read_ids_and_labels(pattern)
    assert r["videos"] == len(ids) and r["ok"] and r["level"] == "video"
    assert abs(r["labels_per_video"] - sum(map(len, labels)) / len(ids)) < 1e-3
    assert main([pattern]) == 0
    out = capsys.readouterr().out
    assert "2 files" in out and str(len(ids)) in out and "all records readable" in out


def test_inspect_finds_crc_error_and_exits_1(frame_data, tmp_path, capsys):
    src = f"{frame_data}/validate0001.tfrecord"
    blob = bytearray(open(src, "rb").read())
    pos = 0
    for _ in range(3):  # skip to record 3
        pos += 16 + struct.unpack("<Q", blob[pos:pos + 8])[0]
    blob[pos + 30] ^= 0x55
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(blob))
    assert main([str(bad), "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert len(r["corrupt"]) == 1 and r["corrupt"][0]["file"] == str(bad) and r["corrupt"][0]["record"] == 3
    assert r["videos"] == 3 and not r["ok"]


def test_inspect_bad_pattern_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "none*.tfrecord")]) == 2
    assert "no files match" in capsys.readouterr().err


def test_inspect_of_a_csv_says_it_is_not_a_tfrecord_in_plain_words(tmp_path, capsys):
    """Was TensorFlow's op text: `{{function_node __wrapped__IteratorGetNext...}} corrupted record at 0`."""
    csv = tmp_path / "submission.csv"
    csv.write_text("VideoId,LabelConfidencePairs\nabc,1 0.5\n")
    assert main([str(csv)]) == 2
    err = capsys.readouterr().err
    assert f"file {csv}, record 0: cannot read the first record: not a TFRecord file (it is a Kaggle CSV)" in err
    assert "function_node" not in err and "[Op:" not in err
