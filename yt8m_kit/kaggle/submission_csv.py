"""The Kaggle CSV, written and read in one place.

Format (DESIGN section 3): header `VideoId,LabelConfidencePairs`, then one row per video:
`<id>,<label> <conf> <label> <conf> ...`, at most 20 pairs, confidence descending (ties: lower
label first), space separated, confidences as '%.6f' and '\\n' line ends, so the same predictions
always give the same bytes. Files are written streaming into a temporary file and renamed onto the
target only when complete (yt8m_kit.fileio.atomic_open): an interrupted run leaves no CSV.

Video ids are tracked as 8-byte fingerprints (IdSet), not strings, so writing and validating the
1.13M-video test CSV holds ~9 MB of ids instead of ~100 MB; a fingerprint match is confirmed on
the exact ids (a second read of the file) before anything is refused.
"""

import collections.abc
import math
from array import array

import numpy as np

from yt8m_kit import NUM_CLASSES, TOP_K
from yt8m_kit.errors import DataError
from yt8m_kit.fileio import atomic_open
from yt8m_kit.data.ids import IdSet, fingerprint, id_fingerprints, in_sorted, video_id_str  # noqa: F401
from yt8m_kit.evaluate.metrics import top_k

HEADER = "VideoId,LabelConfidencePairs"
CONF_FORMAT = "%.6f"


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

    The file appears only when the block exits cleanly; `rows` counts the rows written; `ids` (an
    IdSet) holds the fingerprints of the ids written, e.g. as validate_csv's expected_ids. A video
    id written twice is refused (DataError naming the line it was first written on).
    """

    def __init__(self, path, k=TOP_K):
        self.path, self.k, self.rows = path, int(k), 0
        self.ids, self._file, self._context = IdSet(), None, None

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
        self._write_lines([video_id_str(v) for v in ids], [_pairs_text(i, v) for i, v in zip(indices, values)])

    def write_row(self, video_id, indices, values):
        """One video's pairs (any order; negative indices are skipped)."""
        video_id, pairs = format_row(video_id, indices, values, k=self.k).split(",", 1)
        self._write_lines([video_id], [pairs])

    def _write_lines(self, video_ids, pairs):
        if self._file is None:
            raise RuntimeError("CsvWriter is written inside `with CsvWriter(path) as writer:` only")
        fps = np.fromiter((fingerprint(v) for v in video_ids), np.uint64, len(video_ids))
        if len(set(video_ids)) != len(video_ids):
            first = next(v for n, v in enumerate(video_ids) if v in video_ids[:n])
            raise DataError(f"video {first!r} written twice (twice in one batch): each video must appear "
                            "once", file=self.path)
        for video_id in np.asarray(video_ids, object)[self.ids.contains(fps)]:
            line = self._line_written(video_id)  # a fingerprint match: confirm on the exact id
            if line is not None:
                raise DataError(f"video {video_id!r} written twice (first on line {line}): each video "
                                "must appear once", file=self.path)
        self.ids.add_fingerprints(fps)
        self._file.write("".join(f"{v},{p}\n" for v, p in zip(video_ids, pairs)))
        self.rows += len(video_ids)

    def _line_written(self, video_id):
        """Line number of `video_id` in what was written so far, or None (a fingerprint collision)."""
        self._file.flush()
        with open(self._file.name, encoding="utf-8", newline="") as f:
            return next((number for number, line in enumerate(f, start=1)
                         if number > 1 and line.split(",", 1)[0] == video_id), None)


def _pairs_text(indices, values):
    return " ".join(f"{i} {CONF_FORMAT % v}" for i, v in zip(indices, values) if i >= 0)


def _rows(path, num_classes=None, max_pairs=None):
    """Yield (line number, id, labels, confs); with num_classes/max_pairs, check each row too."""
    try:
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
    except OSError as e:  # missing, a directory, unreadable: a message naming it, not a traceback
        raise DataError(f"cannot read this CSV: {e.strerror or e}", file=path) from None
    except UnicodeDecodeError:  # a binary file given as a CSV (a .h5 prediction file, a TFRecord)
        raise DataError("not a text CSV: it holds bytes that are not UTF-8 (a .h5 or TFRecord?)", file=path) from None


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


def _expected_fingerprints(path, found, expected_ids, rows_path=None, missing_advice=None):
    """DataError unless the CSV's fingerprints `found` (unique, sorted) are exactly the expected ids'.

    expected_ids: an IdSet (e.g. CsvWriter.ids; missing ids cannot be named then) or ids.
    rows_path: where the CSV's rows are read to name extra ids (default `path`); missing_advice: why ids lack.
    """
    named = None if isinstance(expected_ids, IdSet) else expected_ids
    expected = expected_ids if isinstance(expected_ids, IdSet) else IdSet(expected_ids)
    want = expected.fingerprints()
    if want.size == found.size and np.array_equal(want, found):
        return
    missing = want[~in_sorted(found, want)]  # (np.setdiff1d would hold ~5 copies of both arrays)
    if missing.size == want.size and found.size:
        raise DataError(f"none of the CSV's {found.size} video(s) is among the {want.size} expected ones: the CSV "
                        "and the data are of different videos (a wrong --data or --input pattern, or another "
                        "split?)", file=path)
    if missing.size:
        if isinstance(named, (collections.abc.Sequence, np.ndarray)):
            lost = set(missing.tolist())
            examples = f"e.g. {sorted(i for i in map(video_id_str, named) if fingerprint(i) in lost)[:5]}"
        else:
            examples = "ids not kept in memory, only their fingerprints: compare the CSV with the input data"
        raise DataError(f"{missing.size} expected video(s) missing, {examples}: " + (missing_advice or "a shard or "
                        "batch was lost, or the file changed after it was written; rerun it"), file=path)
    extra = found[~in_sorted(want, found)]
    if extra.size:
        strays = set(extra.tolist())
        names = []
        for _, video_id, _, _ in _rows(rows_path or path):
            if fingerprint(video_id) in strays:
                names.append(video_id)
                if len(names) == 5:
                    break
        raise DataError(f"{extra.size} video(s) not in the expected set, e.g. {sorted(names)}: wrong input "
                        "data or CSV?", file=path)


def _first_duplicate(path, suspects):
    """Raise DataError for the first id that really appears twice among rows whose fingerprint is in
    `suspects`; return quietly when they were only fingerprint collisions."""
    first = {}
    for number, video_id, _, _ in _rows(path):
        if fingerprint(video_id) in suspects:
            if video_id in first:
                raise DataError(f"video {video_id!r} appears twice (first on line {first[video_id]})",
                                file=path, record=f"line {number}")
            first[video_id] = number


def validate_csv(path, expected_ids=None, num_classes=NUM_CLASSES):
    """Check a Kaggle CSV -> summary {"path", "rows", "pairs", "empty_rows", "max_pairs"}.

    DataError on: bad header, malformed row, non-numeric value, > 20 pairs, label out of range,
    confidences not descending, a label twice in a row, a video id twice, and (with expected_ids:
    ids, or an IdSet such as CsvWriter.ids) missing or extra videos. Memory: 8 bytes a row
    (fingerprints; see IdSet), whatever the ids' length; row errors come before duplicate ones.
    """
    fps, pairs, empty, widest = array("Q"), 0, 0, 0
    for _, video_id, labels, _ in _rows(path, num_classes, TOP_K):
        fps.append(fingerprint(video_id))
        pairs += labels.size
        empty += labels.size == 0
        widest = max(widest, labels.size)
    rows, found = len(fps), np.frombuffer(fps, np.uint64).copy()
    del fps
    found.sort()
    same = found[1:] == found[:-1]
    if same.any():
        _first_duplicate(path, set(found[1:][same].tolist()))
    if expected_ids is not None:
        _expected_fingerprints(path, found[np.concatenate([[True], ~same])], expected_ids)  # unique
    return {"path": str(path), "rows": rows, "pairs": pairs, "empty_rows": empty, "max_pairs": widest}


def _first_row(paths, video_id, stop):
    """'PATH line N' of the first row of `video_id` in `paths`, before (input index, line) `stop`."""
    for index, path in enumerate(paths):
        for number, other, _, _ in _rows(path):
            if (index, number) == stop:
                return None
            if other == video_id:
                return f"{path} line {number}"
    return None


def merge_csvs(inputs, output, expected_ids=None, num_classes=NUM_CLASSES, missing_advice=None):
    """Merge shard CSVs into `output` (atomic), each video exactly once -> summary dict.

    A video in two inputs, a malformed row, or (with expected_ids) a missing or extra video is a
    DataError, and then no output is written. Ids are tracked as fingerprints (IdSet): a match is
    confirmed by reading the inputs again, so memory does not grow with the ids' text.
    """
    inputs = list(inputs)
    with CsvWriter(output) as writer:
        for index, path in enumerate(inputs):
            for number, video_id, labels, confs in _rows(path, num_classes, TOP_K):
                if writer.ids.contains([fingerprint(video_id)])[0]:
                    first = _first_row(inputs, video_id, stop=(index, number))
                    if first is not None:
                        raise DataError(f"video {video_id!r} appears twice (first in {first})",
                                        file=path, record=f"line {number}")
                writer.write_row(video_id, labels, confs)
        if expected_ids is not None:
            writer._file.flush()
            _expected_fingerprints(output, writer.ids.fingerprints(), expected_ids, rows_path=writer._file.name,
                                   missing_advice=missing_advice)
    return {"output": str(output), "inputs": len(inputs), "rows": writer.rows}
