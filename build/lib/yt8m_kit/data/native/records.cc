// Native TFRecord ops for yt8m_kit's record stream (see yt8m_kit/data/records.py, record_stream).
//
// TFRecord framing: uint64 length, uint32 masked CRC-32C of those 8 bytes, the payload, uint32
// masked CRC-32C of the payload (little endian). Instead of streaming whole records through
// tf.data (a copy into each record's string, then another into the batch), the stream carries each
// record's place in its file, and Yt8mReadRecords reads a batch of records straight into the
// batch's strings, checking the payload CRC as TFRecordDataset does.
//
// Yt8mRecordIndex reads a file's record headers only: (payload offset, length) of each record,
// checking each length's CRC and that the payload fits in the file. A file that goes bad (a short
// header, a length CRC mismatch, a payload past the end) gets one last row (-reason, byte offset),
// so the stream reaches the bad record where TFRecordDataset would, and Yt8mReadRecords stops
// there with an error naming file and record.
//
// Errors carry the marked text yt8m_kit.data.dataset.to_data_error reads back (file, record, reason):
// keep kOpen/kSep/kClose equal to data/dataset.py's _MARK_OPEN/_SEP/_MARK_CLOSE (tests/test_native.py).

#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "absl/crc/crc32c.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/file_system.h"

namespace {

using tensorflow::int64;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::RandomAccessFile;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::tstring;
using tensorflow::errors::InvalidArgument;

constexpr char kOpen[] = "<<YT8M||", kSep[] = "||", kClose[] = "||YT8M>>";
enum Bad { kShortHeader = 1, kLengthCrc = 2, kPastEnd = 3, kPayloadCrc = 4, kShortRead = 5 };

const char* Why(int64 reason) {
  switch (reason) {
    case kShortHeader: return "the file ends inside a record header (truncated file)";
    case kLengthCrc: return "length CRC mismatch";
    case kPastEnd: return "the record runs past the end of the file (truncated file)";
    case kPayloadCrc: return "payload CRC mismatch";
    default: return "short read (the file changed while being read?)";
  }
}

#if defined(__x86_64__)
// CRC-32C with the SSE4.2 instruction, three independent streams joined by absl::ConcatCrc32c: ~25
// GB/s here, where absl::ComputeCrc32c as built into TensorFlow runs ~4 GB/s (64 us of a 256 KiB
// record: a third of what raw reading costs a video). Same value (tests/test_native.py).
__attribute__((target("sse4.2"))) uint32_t Crc1(uint32_t crc, const char* p, size_t n) {
  uint64_t c = ~crc & 0xffffffffu;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n; --n) c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*p++));
  return ~c32;
}

__attribute__((target("sse4.2"))) uint32_t Crc3(const char* p, size_t n) {
  if (n < 3 * 4096) return Crc1(0, p, n);
  const size_t third = (n / 3) & ~size_t(7);
  const char *a = p, *b = p + third, *c = p + 2 * third;
  uint64_t ca = 0xffffffffu, cb = 0xffffffffu, cc = 0xffffffffu;
  for (size_t i = 0; i < third; i += 8) {
    uint64_t wa, wb, wc;
    std::memcpy(&wa, a + i, 8);
    std::memcpy(&wb, b + i, 8);
    std::memcpy(&wc, c + i, 8);
    ca = _mm_crc32_u64(ca, wa);
    cb = _mm_crc32_u64(cb, wb);
    cc = _mm_crc32_u64(cc, wc);
  }
  const uint32_t last = Crc1(~static_cast<uint32_t>(cc), p + 3 * third, n - 3 * third);  // c's third, then the tail
  absl::crc32c_t crc = absl::ConcatCrc32c(absl::crc32c_t{~static_cast<uint32_t>(ca)},
                                          absl::crc32c_t{~static_cast<uint32_t>(cb)}, third);
  return static_cast<uint32_t>(absl::ConcatCrc32c(crc, absl::crc32c_t{last}, n - 2 * third));
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

uint32_t Crc32c(const char* p, size_t n) {
#if defined(__x86_64__)
  if (kHaveSse42) return Crc3(p, n);
#endif
  return static_cast<uint32_t>(absl::ComputeCrc32c(absl::string_view(p, n)));
}

uint32_t Masked(const char* p, size_t n) {
  const uint32_t crc = Crc32c(p, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t Le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

absl::Status Corrupt(const std::string& file, int64 record, int64 reason) {
  return tensorflow::errors::DataLoss(kOpen, file, kSep, record, kSep,
                                      "corrupt record (CRC mismatch or truncated file): ", Why(reason),
                                      "; re-download the file, or pass skip_bad=True to skip the rest of it",
                                      kSep, kClose);
}

class RecordIndexOp : public OpKernel {
 public:
  explicit RecordIndexOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const std::string name(c->input(0).scalar<tstring>()());
    tensorflow::Env* env = c->env();
    uint64_t size = 0;
    OP_REQUIRES_OK(c, env->GetFileSize(name, &size));
    std::unique_ptr<RandomAccessFile> file;
    OP_REQUIRES_OK(c, env->NewRandomAccessFile(name, &file));
    std::vector<int64> rows;
    uint64_t pos = 0;
    int64 bad = 0;
    char head[12];
    while (pos < size) {
      absl::string_view got;
      if (size - pos < 12) { bad = kShortHeader; break; }
      absl::Status s = file->Read(pos, 12, &got, head);
      if (got.size() < 12) {
        OP_REQUIRES(c, s.ok() || absl::IsOutOfRange(s), s);
        bad = kShortRead;
        break;
      }
      const uint64_t len = Le(got.data(), 8);
      if (Masked(got.data(), 8) != Le(got.data() + 8, 4)) { bad = kLengthCrc; break; }
      if (len > size - pos - 12 || size - pos - 12 - len < 4) { bad = kPastEnd; break; }
      rows.push_back(static_cast<int64>(pos + 12));
      rows.push_back(static_cast<int64>(len));
      pos += 16 + len;
    }
    if (bad) {
      rows.push_back(-bad);
      rows.push_back(static_cast<int64>(pos));
    }
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({static_cast<int64>(rows.size() / 2), 2}), &out));
    if (!rows.empty()) std::memcpy(out->flat<int64>().data(), rows.data(), rows.size() * sizeof(int64));
  }
};

class ReadRecordsOp : public OpKernel {
 public:
  explicit ReadRecordsOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor &files = c->input(0), &file_idx = c->input(1), &record_idx = c->input(2), &where = c->input(3);
    OP_REQUIRES(c, files.dims() == 1 && file_idx.dims() == 1 && record_idx.dims() == 1 && where.dims() == 2 &&
                       where.dim_size(1) == 2 && file_idx.dim_size(0) == where.dim_size(0) &&
                       record_idx.dim_size(0) == where.dim_size(0),
                InvalidArgument("Yt8mReadRecords: files [F], file_idx [B], record_idx [B], where [B, 2]"));
    const int64 B = where.dim_size(0), F = files.dim_size(0);
    auto names = files.flat<tstring>();
    auto fi = file_idx.flat<int32_t>();
    auto ri = record_idx.flat<int64>();
    auto w = where.matrix<int64>();
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({B}), &out));
    auto rec = out->flat<tstring>();
    // Opened per call, not kept: a file replaced between two datasets is never read through an old handle.
    std::unordered_map<int32_t, std::unique_ptr<RandomAccessFile>> open;
    for (int64 b = 0; b < B; ++b) {
      OP_REQUIRES(c, fi(b) >= 0 && fi(b) < F, InvalidArgument("file index ", fi(b), " out of range"));
      const std::string name(names(fi(b)));
      if (w(b, 0) < 0) {
        c->SetStatus(Corrupt(name, ri(b), -w(b, 0)));
        return;
      }
      std::unique_ptr<RandomAccessFile>& file = open[fi(b)];
      if (!file) OP_REQUIRES_OK(c, c->env()->NewRandomAccessFile(name, &file));
      const uint64_t len = static_cast<uint64_t>(w(b, 1));
      tstring& s = rec(b);
      s.resize_uninitialized(len + 4);  // the payload, then its CRC: read straight into the batch
      absl::string_view got;
      absl::Status st = file->Read(static_cast<uint64_t>(w(b, 0)), len + 4, &got, s.mdata());
      if (got.size() < len + 4) {
        OP_REQUIRES(c, st.ok() || absl::IsOutOfRange(st), st);
        c->SetStatus(Corrupt(name, ri(b), kShortRead));
        return;
      }
      if (got.data() != s.data()) std::memcpy(s.mdata(), got.data(), len + 4);
      if (Masked(s.data(), len) != Le(s.data() + len, 4)) {
        c->SetStatus(Corrupt(name, ri(b), kPayloadCrc));
        return;
      }
      s.resize(len);
    }
  }
};

}  // namespace

REGISTER_OP("Yt8mRecordIndex")
    .Input("filename: string")
    .Output("where: int64")
    .SetIsStateful()  // reads a file: never constant-folded
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Matrix(c->UnknownDim(), 2));
      return absl::OkStatus();
    });

REGISTER_OP("Yt8mReadRecords")
    .Input("files: string")
    .Input("file_idx: int32")
    .Input("record_idx: int64")
    .Input("where: int64")
    .Output("records: string")
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(3), 0)));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Yt8mRecordIndex").Device(tensorflow::DEVICE_CPU), RecordIndexOp);
REGISTER_KERNEL_BUILDER(Name("Yt8mReadRecords").Device(tensorflow::DEVICE_CPU), ReadRecordsOp);
