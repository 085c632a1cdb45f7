"""Native record reading (yt8m_kit/native/records.cc): the record index and the batch read give
TFRecordDataset's records, keys and order, check both CRCs, and name the file and record at fault."""

import struct

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kit.data import dataset as data
from yt8m_kit.data import synth
from yt8m_kit.errors import DataError
from yt8m_kit.data.records import read_records


def _offsets(path):
    blob, offs, pos = open(path, "rb").read(), [], 0
    while pos < len(blob):
        offs.append(pos)
        pos += 16 + struct.unpack("<Q", blob[pos:pos + 8])[0]
    return offs


def _read_all(ops, files, **kw):
    """(keys, records) of the index-mode stream, read back in batches of 5 by the native op."""
    kw = dict(dict(shuffle=False, seed=0, epochs=1, shuffle_buffer=1, num_parallel_reads=None), **kw)
    keys, recs, files_t = [], [], tf.constant(files)
    for k, w in data.record_stream(files, index=ops, **kw).batch(5):
        keys += k.numpy().tolist()
        recs += read_records(ops, files_t, k, w).numpy().tolist()
    return keys, recs


def test_records_of_every_length_read_back_exactly(ops, tmp_path):
    """Payloads of 0 bytes to 300 KB (the CRC's short and three-stream paths) equal what was written."""
    rng = np.random.default_rng(0)
    lengths = [0, 1, 7, 8, 100, 12287, 12288, 12300, 100001, 300000]
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    path = str(tmp_path / "lengths.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for p in payloads:
            w.write(p)
    where = ops.yt8m_record_index(path).numpy()
    offs = _offsets(path)
    assert where.tolist() == [[o + 12, n] for o, n in zip(offs, lengths)]
    keys, recs = _read_all(ops, [path])
    assert recs == payloads and keys == list(range(len(lengths)))
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert ops.yt8m_record_index(str(empty)).numpy().shape == (0, 2)


@pytest.mark.parametrize("kw", [dict(), dict(shuffle=True, seed=3, shuffle_buffer=7, epochs=3),
                                dict(shuffle=True, seed=1, shuffle_buffer=50, epochs=2, num_parallel_reads=1),
                                dict(epochs=3, first_epoch=1)])
def test_index_stream_has_the_tfrecord_streams_keys_order_and_records(ops, frame_data, kw):
    files = data.list_files(f"{frame_data}/train*.tfrecord")
    keys, recs = _read_all(ops, files, **kw)
    base = dict(dict(shuffle=False, seed=0, epochs=1, shuffle_buffer=1, num_parallel_reads=None), **kw)
    want = [(k.numpy(), s.numpy()) for k, s in data.record_stream(files, **base)]
    assert keys == [k for k, _ in want] and recs == [s for _, s in want]


def _corrupt(src, dst, offset, cut=None):
    blob = bytearray(open(src, "rb").read())
    if offset is not None:
        blob[offset] ^= 0xFF
    dst.write_bytes(bytes(blob[:cut]))
    return dst


def test_bad_records_stop_where_tfrecord_stops_naming_file_and_record(ops, frame_data, tmp_path, monkeypatch):
    src = data.list_files(f"{frame_data}/train0000.tfrecord")[0]
    offs, n = _offsets(src), len(_offsets(src))
    cases = {  # name: (file, bad record, what the index says)
        "payload_crc": (_corrupt(src, tmp_path / "p.tfrecord", offs[5] + 40), 5, None),
        "length_crc": (_corrupt(src, tmp_path / "l.tfrecord", offs[3] + 9), 3, -2),
        "short_header": (_corrupt(src, tmp_path / "h.tfrecord", None, cut=offs[6] + 5), 6, -1),
        "past_end": (_corrupt(src, tmp_path / "e.tfrecord", None, cut=offs[-1] + 100), n - 1, -3),
    }
    for name, (path, bad, code) in cases.items():
        where = ops.yt8m_record_index(str(path)).numpy()
        if code is None:
            assert where.shape == (n, 2), name
        else:
            assert where.shape == (bad + 1, 2) and where[-1].tolist() == [code, offs[bad]], name
        for native_read in (True, False):
            got, e = [], None
            try:
                for b in data.iterate(data.make_dataset(str(path), 2, frames="sample", num_samples=3,
                                                        native_read=native_read)):
                    got += b["id"].numpy().tolist()
            except DataError as err:
                e = err
            assert e is not None or (name == "short_header" and not native_read), (name, native_read)
            if name == "short_header" and not native_read:
                # TFRecordDataset (the fallback) ends a file silently at a tail shorter than a header;
                # the native index does not, nor do scan_file and so `inspect` and skip_bad.
                assert len(got) == bad
                assert data.scan_file(str(path)) == (bad, "5 bytes after the last whole record: the file ends "
                                                          "inside a record header (truncated file)")
                continue
            assert (e.file, e.record) == (str(path), bad), (name, native_read)
            assert len(got) == bad - bad % 2, (name, native_read)  # every whole batch before it was delivered
            assert "corrupt record" in str(e) and "re-download the file" in str(e)


def test_native_read_batches_equal_tfrecord_batches(ops, frame_data, monkeypatch):
    pattern = f"{frame_data}/train*.tfrecord"
    kw = dict(frames="sample", num_samples=20, quantized=True, shuffle=True, seed=2, epochs=2, start_example=17)

    def batches(native_read):
        return [{k: v.numpy() for k, v in b.items()}
                for b in data.iterate(data.make_dataset(pattern, 8, native_read=native_read, **kw))]

    a, b = batches(True), batches(False)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_real_size_records(ops, tmp_path):
    """Records of a few hundred frames (~256 KB, as the real data): read back exactly, in batches."""
    synth.generate(tmp_path, "frame", 10, seed=4, shards=2, min_frames=200, max_frames=330,
                   split_videos={"train": 10, "validate": 1, "test": 1})
    files = data.list_files(f"{tmp_path}/train*.tfrecord")
    keys, recs = _read_all(ops, files)
    want = [s.numpy() for _, s in data.record_stream(files, shuffle=False, seed=0, epochs=1, shuffle_buffer=1,
                                                      num_parallel_reads=None)]
    assert recs == want and min(len(r) for r in recs) > 200 * 1033
