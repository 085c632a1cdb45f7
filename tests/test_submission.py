"""The Kaggle CSV: exact format, round trip, every validation failure, merging, atomic writes."""

import os

import numpy as np
import pytest

from yt8m_kit.errors import DataError
from yt8m_kit.evaluate.metrics import top_k
from yt8m_kit.kaggle.submission_csv import CsvWriter, format_row, merge_csvs, read_csv, validate_csv

HEADER = "VideoId,LabelConfidencePairs\n"


def write_text(path, rows):
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_format_row_is_exact_and_sorted():
    row = format_row(b"ab12", [7, 3, -1, 5], [0.25, 0.9, 0.0, 0.25])
    assert row == "ab12,3 0.900000 5 0.250000 7 0.250000"  # ties: lower label first; -1 skipped
    assert format_row("x", [1, 2, 3], [0.1, 0.3, 0.2], k=2) == "x,2 0.300000 3 0.200000"
    assert format_row("empty", [], []) == "empty,"
    with pytest.raises(DataError, match="comma"):
        format_row("a,b", [1], [0.5])


def test_round_trip_and_byte_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((25, 300)).astype(np.float32)
    ids = [f"v{i:03d}".encode() for i in range(25)]  # bytes, as TFRecords give them
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for path in paths:
        with CsvWriter(path) as writer:
            writer.write(ids[:10], scores[:10])
            writer.write(ids[10:], scores[10:])
        assert writer.rows == 25
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_text().startswith(HEADER)
    want_idx, want_val = top_k(scores, 20)
    rows = list(read_csv(paths[0]))
    assert [r[0] for r in rows] == [i.decode() for i in ids]
    for (_, labels, confs), idx, val in zip(rows, want_idx, want_val):
        assert labels.tolist() == idx.tolist()
        np.testing.assert_allclose(confs, val, atol=5e-7)
    summary = validate_csv(paths[0], expected_ids=ids, num_classes=300)
    assert summary["rows"] == 25 and summary["pairs"] == 500 and summary["max_pairs"] == 20


def test_write_topk_pads_and_refuses_duplicate_ids(tmp_path):
    path = tmp_path / "s.csv"
    with CsvWriter(path) as writer:
        writer.write_topk(["a", "b"], [[4, -1], [-1, -1]], [[0.5, 0.0], [0.0, 0.0]])
    assert path.read_text() == HEADER + "a,4 0.500000\nb,\n"
    with pytest.raises(DataError, match="written twice"):
        with CsvWriter(tmp_path / "dup.csv") as writer:
            writer.write_topk(["a", "a"], [[1], [2]], [[0.5], [0.5]])
    assert not (tmp_path / "dup.csv").exists()


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError, match="boom"):
        with CsvWriter(path) as writer:
            writer.write(["a", "b"], np.ones((2, 30), np.float32))
            raise RuntimeError("boom")
    assert path.read_text() == "previous\n"  # untouched
    assert os.listdir(tmp_path) == ["sub.csv"]  # no temporary file left behind
    with pytest.raises(RuntimeError, match="boom"):
        with CsvWriter(tmp_path / "new.csv") as writer:
            raise RuntimeError("boom")
    assert not (tmp_path / "new.csv").exists()


GOOD = ["v1,3 0.900000 1 0.500000", "v2,", "v3,2 0.400000"]


@pytest.mark.parametrize("rows,header,expected,pattern", [
    (GOOD, "VideoId,Labels", None, "bad header"),
    (GOOD + ["v1,4 0.100000"], None, None, r"line 5.*'v1' appears twice \(first on line 2\)"),
    ([" ".join(f"{i} 0.5" for i in range(21)).join(["v9,", ""])], None, None, "21 pairs, more than 20"),
    (["v1,3862 0.5"], None, None, r"line 2.*label out of range.*3862"),
    (["v1,-1 0.5"], None, None, "label out of range"),
    (["v1,x 0.5"], None, None, r"line 2.*label is not an integer.*'x'"),
    (["v1,3 high"], None, None, r"confidence is not a number.*'high'"),
    (["v1,3 nan"], None, None, "not a finite number"),
    (["v1,3 0.2 4 0.3"], None, None, r"line 2.*not descending: 0.2 then 0.3"),
    (["v1,3 0.5 3 0.4"], None, None, "same label appears twice"),
    (["v1,3"], None, None, "odd number of tokens"),
    (["v1 3 0.5"], None, None, "expected '<id>,"),
    (GOOD, None, ["v1", "v2", "v3", "v4"], r"1 expected video\(s\) missing.*v4"),
    (GOOD, None, ["v1", "v2"], r"1 video\(s\) not in the expected set.*v3"),
])
def test_validate_csv_failures(tmp_path, rows, header, expected, pattern):
    path = write_text(tmp_path / "bad.csv", rows)
    if header:
        path.write_text(header + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=pattern) as info:
        validate_csv(path, expected_ids=expected)
    assert str(path) in str(info.value)  # every error names the file


def test_validate_csv_accepts_good_file(tmp_path):
    path = write_text(tmp_path / "good.csv", GOOD)
    summary = validate_csv(path, expected_ids=["v3", "v2", "v1"])
    assert summary == {"path": str(path), "rows": 3, "pairs": 3, "empty_rows": 1, "max_pairs": 2}


def test_merge_exactly_once(tmp_path):
    a = write_text(tmp_path / "a.csv", ["v1,3 0.9", "v2,"])
    b = write_text(tmp_path / "b.csv", ["v3,2 0.4 7 0.4"])
    out = tmp_path / "all.csv"
    summary = merge_csvs([a, b], out, expected_ids=["v1", "v2", "v3"])
    assert summary["rows"] == 3
    assert out.read_text() == HEADER + "v1,3 0.900000\nv2,\nv3,2 0.400000 7 0.400000\n"

    dup = write_text(tmp_path / "dup.csv", ["v2,1 0.3"])
    out2 = tmp_path / "twice.csv"
    with pytest.raises(DataError, match=r"dup.csv.*line 2.*'v2' appears twice \(first in .*a.csv line 3\)"):
        merge_csvs([a, b, dup], out2)
    assert not out2.exists()
    with pytest.raises(DataError, match=r"missing, e.g. \['v4'\]"):
        merge_csvs([a, b], out2, expected_ids=["v1", "v2", "v3", "v4"])
    assert not out2.exists()
    with pytest.raises(DataError, match=r"not in the expected set, e.g. \['v3'\]"):
        merge_csvs([a, b], out2, expected_ids=["v1", "v2"])
    assert not out2.exists()
