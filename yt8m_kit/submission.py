"""The Kaggle CSV, written and read in one place.

Format (DESIGN section 3): header `VideoId,LabelConfidencePairs`, then one row per video:
`<id>,<label> <conf> <label> <conf> ...`, at most 20 pairs, confidence descending (ties: lower
label first), space separated, confidences as '%.6f' and '\\n' line ends, so the same predictions
always give the same bytes. Files are written streaming into a temporary file and renamed onto the
target only when complete (yt8m_kit.fileio.atomic_open): an interrupted run leaves no CSV.
"""

import math

import numpy as np

from yt8m_kit import NUM_CLASSES, TOP_K
from yt8m_kit.errors import DataError
from yt8m_kit.fileio import atomic_open
from yt8m_kit.metrics import top_k

HEADER = "VideoId,LabelConfidencePairs"
CONF_FORMAT = "%.6f"


def video_id_str(video_id):
    """A video id as str (bytes from TFRecords are utf-8); refuses ids that would break a row."""
    if isinstance(video_id, (bytes, np.bytes_)):
        video_id = bytes(video_id).decode("utf-8")
    video_id = str(video_id)
    if not video_id or any(ch in video_id for ch in ',\n\r"'):
        raise DataError("video id is empty or holds a comma, quote or line break; it cannot be a "
                        "CSV field", value=video_id)
    return video_id


def format_row(video_id, indices, values, k=None):
    """One CSV row (no line end): id, then 'label conf' pairs by confidence descending.

    Negative indices are padding and skipped; k (optional) keeps only the k best pairs.
    """
    indices = np.asarray(indices).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = indices >= 0
    indices, values = indices[keep], values[keep] + 0.0  # + 0.0: no '-0.000000'
    if not np.all(np.isfinite(values)):
        raise DataError(f"video {video_id!r}: confidence is NaN or infinite", value=values.tolist())
    order = np.lexsort((indices, -values))[:k]
    return f"{video_id_str(video_id)},{_pairs_text(indices[order].tolist(), values[order].tolist())}"


class CsvWriter:
    """Streams rows into `path` atomically: `with CsvWriter(path) as w: w.write(ids, scores)`.

    The file appears only when the block exits cleanly; `rows` counts the rows written. A video id
    written twice is refused (DataError).
    """

    def __init__(self, path, k=TOP_K):
        self.path, self.k, self.rows = path, int(k), 0
        self._ids, self._file, self._context = set(), None, None

    def __enter__(self):
        self._context = atomic_open(self.path, "w", encoding="utf-8", newline="")
        self._file = self._context.__enter__()
        self._file.write(HEADER + "\n")
        return self

    def __exit__(self, exc_type, exc, tb):
        self._file = None
        return self._context.__exit__(exc_type, exc, tb)

    def write(self, ids, scores):
        """A batch: ids (B,) str or bytes, scores (B, C) -> the top k of each row."""
        indices, values = top_k(scores, self.k)
        self.write_topk(ids, indices, values)

    def write_topk(self, ids, indices, values):
        """A batch already reduced to pairs: indices (B, k) (negative = none), values (B, k)."""
        ids = list(ids)
        indices = np.asarray(indices, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64) + 0.0  # + 0.0: no '-0.000000'
        if indices.ndim != 2 or indices.shape != values.shape or len(ids) != len(indices):
            raise DataError(f"{len(ids)} ids for indices {indices.shape} and values {values.shape}")
        bad = (indices >= 0) & ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0, 0])
            raise DataError(f"video {ids[row]!r}: confidence is NaN or infinite", file=self.path)
        order = np.lexsort((indices, -values, indices < 0), axis=1)[:, :self.k]  # pairs first
        indices = np.take_along_axis(indices, order, axis=1).tolist()
        values = np.take_along_axis(values, order, axis=1).tolist()
        for video_id, idx, val in zip(ids, indices, values):
            self._write_line(video_id_str(video_id), _pairs_text(idx, val))

    def write_row(self, video_id, indices, values):
        """One video's pairs (any order; negative indices are skipped)."""
        self._write_line(*format_row(video_id, indices, values, k=self.k).split(",", 1))

    def _write_line(self, video_id, pairs):
        if self._file is None:
            raise RuntimeError("CsvWriter is written inside `with CsvWriter(path) as writer:` only")
        if video_id in self._ids:
            raise DataError(f"video {video_id!r} written twice: each video must appear once",
                            file=self.path)
        self._ids.add(video_id)
        self._file.write(f"{video_id},{pairs}\n")
        self.rows += 1


def _pairs_text(indices, values):
    return " ".join(f"{i} {CONF_FORMAT % v}" for i, v in zip(indices, values) if i >= 0)


def _rows(path, num_classes=None, max_pairs=None):
    """Yield (line number, id, labels, confs); with num_classes/max_pairs, check each row too."""
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n").lstrip("\ufeff")
        if header != HEADER:
            raise DataError(f"bad header: expected {HEADER!r}", file=path, record="line 1",
                            value=header[:80])
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            where = {"file": path, "record": f"line {number}"}
            if "," not in line:
                raise DataError("expected '<id>,<label> <conf> ...'", value=line[:80], **where)
            video_id, pairs = line.split(",", 1)
            if not video_id:
                raise DataError("empty video id", value=line[:80], **where)
            tokens = pairs.split()
            if len(tokens) % 2:
                raise DataError("odd number of tokens: pairs are '<label> <conf>'", value=pairs[:80], **where)
            labels, confs = _parse_pairs(tokens, where)
            if num_classes is not None or max_pairs is not None:
                _check_row(labels, confs, num_classes, max_pairs, where)
            yield number, video_id, np.array(labels, dtype=np.int64), np.array(confs, dtype=np.float64)


def _parse_pairs(tokens, where):
    """Lists of ints and finite floats; on failure, find the bad token for the message."""
    try:
        labels, confs = list(map(int, tokens[0::2])), list(map(float, tokens[1::2]))
    except ValueError:
        for label, conf in zip(tokens[0::2], tokens[1::2]):
            try:
                int(label)
            except ValueError:
                raise DataError("label is not an integer", value=label, **where) from None
            try:
                float(conf)
            except ValueError:
                raise DataError("confidence is not a number", value=conf, **where) from None
        raise
    if not all(map(math.isfinite, confs)):
        raise DataError("confidence is not a finite number", value=tokens[1::2], **where)
    return labels, confs


def _check_row(labels, confs, num_classes, max_pairs, where):
    if max_pairs is not None and len(labels) > max_pairs:
        raise DataError(f"{len(labels)} pairs, more than {max_pairs}", **where)
    if num_classes is not None and labels and (min(labels) < 0 or max(labels) >= num_classes):
        bad = next(x for x in labels if not 0 <= x < num_classes)
        raise DataError(f"label out of range 0..{num_classes - 1}", value=bad, **where)
    for a, b in zip(confs, confs[1:]):
        if b > a:
            raise DataError(f"confidences not descending: {a:g} then {b:g}", **where)
    if len(set(labels)) != len(labels):
        raise DataError("the same label appears twice", value=labels, **where)


def read_csv(path, *, num_classes=None, max_pairs=None):
    """Iterate (video id, labels int64 array, confs float64 array) over a Kaggle CSV.

    Malformed rows raise DataError naming the file, the line and the value. With num_classes and/or
    max_pairs, each row is also checked (range, count, descending, repeated labels).
    """
    for _, video_id, labels, confs in _rows(path, num_classes, max_pairs):
        yield video_id, labels, confs


def _check_expected(seen, expected_ids, path):
    expected = {video_id_str(i) for i in expected_ids}
    missing, extra = expected.difference(seen), set(seen).difference(expected)
    if missing:
        raise DataError(f"{len(missing)} expected video(s) missing, e.g. {sorted(missing)[:5]}: a shard "
                        "or batch was lost; rerun it", file=path)
    if extra:
        raise DataError(f"{len(extra)} video(s) not in the expected set, e.g. {sorted(extra)[:5]}: wrong "
                        "input data or CSV?", file=path)


def validate_csv(path, expected_ids=None, num_classes=NUM_CLASSES):
    """Check a Kaggle CSV -> summary {"path", "rows", "pairs", "empty_rows", "max_pairs"}.

    DataError on: bad header, malformed row, non-numeric value, > 20 pairs, label out of range,
    confidences not descending, a label twice in a row, a video id twice, and (with expected_ids)
    missing or extra videos.
    """
    seen, pairs, empty, widest = {}, 0, 0, 0
    for number, video_id, labels, _ in _rows(path, num_classes, TOP_K):
        if video_id in seen:
            raise DataError(f"video {video_id!r} appears twice (first on line {seen[video_id]})",
                            file=path, record=f"line {number}")
        seen[video_id] = number
        pairs += labels.size
        empty += labels.size == 0
        widest = max(widest, labels.size)
    if expected_ids is not None:
        _check_expected(seen, expected_ids, path)
    return {"path": str(path), "rows": len(seen), "pairs": pairs, "empty_rows": empty, "max_pairs": widest}


def merge_csvs(inputs, output, expected_ids=None, num_classes=NUM_CLASSES):
    """Merge shard CSVs into `output` (atomic), each video exactly once -> summary dict.

    A video in two inputs, a malformed row, or (with expected_ids) a missing or extra video is a
    DataError, and then no output is written.
    """
    seen = {}
    with CsvWriter(output) as writer:
        for path in inputs:
            for number, video_id, labels, confs in _rows(path, num_classes, TOP_K):
                if video_id in seen:
                    raise DataError(f"video {video_id!r} appears twice (first in {seen[video_id]})",
                                    file=path, record=f"line {number}")
                seen[video_id] = f"{path} line {number}"
                writer.write_row(video_id, labels, confs)
        if expected_ids is not None:
            _check_expected(seen, expected_ids, output)
    return {"output": str(output), "inputs": len(inputs), "rows": writer.rows}
