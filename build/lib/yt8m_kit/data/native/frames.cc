// Native frame reader ops for yt8m_kit (see yt8m_kit/native/__init__.py).
//
// Yt8mFrameLayout walks each serialized tf.train.SequenceExample on the wire and finds the "rgb" and
// "audio" FeatureLists. A list is regular when it is n back-to-back frames, each a Feature holding a
// BytesList holding one value of exactly `dim` bytes: the encoding tf.train.SequenceExample (and so
// every YouTube-8M file) writes. Then frame i's payload is at offset + i * stride + header. For
// anything else (other encodings, wrong byte lengths, missing lists, unequal counts, no frames) the
// record is flagged irregular and the caller falls back to tf's parser, which also words the error.
//
// Yt8mGatherFrames copies chosen frames of regular records straight into a (B, K, 1152) batch,
// rgb then audio: uint8 as stored, or float32 through a 256-entry table (the caller passes the
// dequantised value of each byte, so the result equals its own dequantise bit for bit). Row -1 is
// padding: zeros.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace {

using tensorflow::int32;
using tensorflow::int64;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::tstring;
using tensorflow::errors::InvalidArgument;

constexpr int kRgb = 1024, kAudio = 128, kDim = kRgb + kAudio;

// Reads a varint at p (< end); returns false when it runs past end or past 10 bytes.
bool Varint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70 && p < end; shift += 7) {
    uint8_t b = *p++;
    v |= uint64_t(b & 0x7F) << shift;
    if (b < 0x80) { *out = v; return true; }
  }
  return false;
}

// One length-delimited field at p: tag and [start, stop). false when malformed or not wire type 2.
bool Field(const uint8_t*& p, const uint8_t* end, uint64_t* tag, const uint8_t** start, const uint8_t** stop) {
  uint64_t len;
  if (!Varint(p, end, tag) || (*tag & 7) != 2 || !Varint(p, end, &len) || len > uint64_t(end - p)) return false;
  *start = p;
  *stop = p + len;
  p = *stop;
  return true;
}

// Skips one field of any wire type at p. false when malformed.
bool Skip(const uint8_t*& p, const uint8_t* end) {
  uint64_t tag, v;
  if (!Varint(p, end, &tag)) return false;
  switch (tag & 7) {
    case 0: return Varint(p, end, &v);
    case 1: if (end - p < 8) return false; p += 8; return true;
    case 2: if (!Varint(p, end, &v) || v > uint64_t(end - p)) return false; p += v; return true;
    case 5: if (end - p < 4) return false; p += 4; return true;
    default: return false;
  }
}

int Encode(uint8_t* out, int n) {  // tag 0x0a then the varint length n (n < 2^14)
  out[0] = 0x0a;
  if (n < 128) { out[1] = uint8_t(n); return 2; }
  out[1] = uint8_t(0x80 | (n & 0x7F));
  out[2] = uint8_t(n >> 7);
  return 3;
}

struct Header {  // the bytes before each frame's payload: Feature, BytesList and value tags and lengths
  uint8_t bytes[9];  // 9 for both dims (1024 and 128 need two-byte lengths at every level)
  int size, stride;
  explicit Header(int dim) {
    uint8_t v[3], l[3], f[3];
    int nv = Encode(v, dim), nl = Encode(l, dim + nv), nf = Encode(f, dim + nv + nl);
    size = 0;
    for (int i = 0; i < nf; ++i) bytes[size++] = f[i];
    for (int i = 0; i < nl; ++i) bytes[size++] = l[i];
    for (int i = 0; i < nv; ++i) bytes[size++] = v[i];
    stride = size + dim;
  }
};

const Header& RgbHeader() { static const Header h(kRgb); return h; }
const Header& AudioHeader() { static const Header h(kAudio); return h; }

// Number of frames when [start, stop) is a regular FeatureList of h's frames, else -1.
int64 RegularFrames(const uint8_t* start, const uint8_t* stop, const Header& h) {
  int64 len = stop - start;
  if (len % h.stride) return -1;
  int64 n = len / h.stride;
  uint64_t head8;  // both headers are 9 bytes: compare 8 + 1 inline instead of calling memcmp per frame
  std::memcpy(&head8, h.bytes, 8);
  for (int64 i = 0; i < n; ++i) {
    const uint8_t* f = start + i * h.stride;
    uint64_t got;
    std::memcpy(&got, f, 8);
    if (got != head8 || f[8] != h.bytes[8]) return -1;
  }
  return n;
}

// Layout of one record: offsets of the rgb and audio FeatureList contents and the frame count; false
// when the record is not regular (see the file comment).
bool Layout(const tstring& rec, int64* rgb, int64* audio, int64* frames) {
  const uint8_t* base = reinterpret_cast<const uint8_t*>(rec.data());
  const uint8_t *p = base, *end = base + rec.size();
  int64 n_rgb = -1, n_audio = -1;
  while (p < end) {
    if (*p != 0x12) {  // not feature_lists (field 2): skip it (context, unknown fields)
      if (!Skip(p, end)) return false;
      continue;
    }
    uint64_t tag;
    const uint8_t *ls, *le;
    if (!Field(p, end, &tag, &ls, &le)) return false;
    for (const uint8_t* q = ls; q < le;) {  // map entries {key = 1, value = 2}, key first as written
      const uint8_t *es, *ee, *ks, *ke, *vs, *ve;
      if (!Field(q, le, &tag, &es, &ee) || tag != 0x0a) return false;
      const uint8_t* r = es;
      if (!Field(r, ee, &tag, &ks, &ke) || tag != 0x0a) return false;
      if (!Field(r, ee, &tag, &vs, &ve) || tag != 0x12 || r != ee) return false;
      int64 klen = ke - ks;
      if (klen == 3 && !std::memcmp(ks, "rgb", 3)) {
        if (n_rgb >= 0 || (n_rgb = RegularFrames(vs, ve, RgbHeader())) < 0) return false;
        *rgb = (vs - base) + RgbHeader().size;
      } else if (klen == 5 && !std::memcmp(ks, "audio", 5)) {
        if (n_audio >= 0 || (n_audio = RegularFrames(vs, ve, AudioHeader())) < 0) return false;
        *audio = (vs - base) + AudioHeader().size;
      }
    }
  }
  *frames = n_rgb;
  return n_rgb > 0 && n_rgb == n_audio;
}

class FrameLayoutOp : public OpKernel {
 public:
  explicit FrameLayoutOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& records = c->input(0);
    OP_REQUIRES(c, records.dims() == 1, InvalidArgument("records must be a vector"));
    const int64 B = records.dim_size(0);
    Tensor *offsets, *frames, *regular;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({B, 2}), &offsets));
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({B}), &frames));
    OP_REQUIRES_OK(c, c->allocate_output(2, TensorShape({B}), &regular));
    auto rec = records.flat<tstring>();
    auto off = offsets->matrix<int64>();
    auto n = frames->flat<int64>();
    auto ok = regular->flat<bool>();
    for (int64 b = 0; b < B; ++b) {
      int64 r = 0, a = 0, f = 0;
      ok(b) = Layout(rec(b), &r, &a, &f);
      off(b, 0) = ok(b) ? r : 0;
      off(b, 1) = ok(b) ? a : 0;
      n(b) = ok(b) ? f : 0;
    }
  }
};

template <typename T>
class GatherFramesOp : public OpKernel {
 public:
  explicit GatherFramesOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor &records = c->input(0), &offsets = c->input(1), &frames = c->input(2), &rows = c->input(3),
                 &table = c->input(4);
    OP_REQUIRES(c, records.dims() == 1 && offsets.dims() == 2 && offsets.dim_size(1) == 2 && frames.dims() == 1 &&
                       rows.dims() == 2 && offsets.dim_size(0) == records.dim_size(0) &&
                       frames.dim_size(0) == records.dim_size(0) && rows.dim_size(0) == records.dim_size(0),
                InvalidArgument("expected records (B,), offsets (B, 2), frames (B,), rows (B, K)"));
    OP_REQUIRES(c, table.dims() == 1 && table.dim_size(0) == 256, InvalidArgument("table must have 256 entries"));
    const int64 B = rows.dim_size(0), K = rows.dim_size(1);
    auto rec = records.flat<tstring>();
    auto off = offsets.matrix<int64>();
    auto n = frames.flat<int64>();
    auto idx = rows.matrix<int32>();
    for (int64 b = 0; b < B; ++b) {
      const int64 size = rec(b).size(), last_rgb = off(b, 0) + (n(b) - 1) * RgbHeader().stride + kRgb,
                  last_audio = off(b, 1) + (n(b) - 1) * AudioHeader().stride + kAudio;
      OP_REQUIRES(c, n(b) > 0 && off(b, 0) >= 0 && off(b, 1) >= 0 && last_rgb <= size && last_audio <= size,
                  InvalidArgument("record ", b, " is not a regular record of this layout (call Yt8mFrameLayout)"));
      for (int64 k = 0; k < K; ++k)
        OP_REQUIRES(c, idx(b, k) >= -1 && idx(b, k) < n(b),
                    InvalidArgument("row ", idx(b, k), " of record ", b, " is outside [-1, ", n(b), ")"));
    }
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({B, K, kDim}), &out));
    T* dst = out->flat<T>().data();
    const float* lut = table.flat<float>().data();
    auto copy = [&](int64 begin, int64 end) {
      for (int64 i = begin; i < end; ++i) {
        const int64 b = i / K, k = i % K;
        T* o = dst + i * kDim;
        const int32 j = idx(b, k);
        if (j < 0) { std::memset(o, 0, kDim * sizeof(T)); continue; }
        const uint8_t* base = reinterpret_cast<const uint8_t*>(rec(b).data());
        const uint8_t* rgb = base + off(b, 0) + int64(j) * RgbHeader().stride;
        const uint8_t* audio = base + off(b, 1) + int64(j) * AudioHeader().stride;
        Put(o, rgb, kRgb, lut);
        Put(o + kRgb, audio, kAudio, lut);
      }
    };
    auto* workers = c->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, B * K, kDim * sizeof(T) * 4, copy);
  }

 private:
  static void Put(uint8_t* o, const uint8_t* src, int n, const float*) { std::memcpy(o, src, n); }
  static void Put(float* o, const uint8_t* src, int n, const float* lut) {
    for (int i = 0; i < n; ++i) o[i] = lut[src[i]];
  }
};

// yt8m_kit.sampling.sample_indices from the per-video hash base (the Fingerprint64 bucket of its key)
// on: the same integer mixing and float64 arithmetic, then a counting sort (rows are < frames <= 300).
class SampleRowsOp : public OpKernel {
 public:
  explicit SampleRowsOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, c->GetAttr("num_samples", &k_)); }
  void Compute(OpKernelContext* c) override {
    const Tensor &base = c->input(0), &frames = c->input(1);
    OP_REQUIRES(c, base.dims() == 1 && frames.dims() == 1 && base.dim_size(0) == frames.dim_size(0),
                InvalidArgument("expected base (B,) and frames (B,)"));
    const int64 B = base.dim_size(0);
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({B, k_}), &out));
    auto h = base.flat<int64>();
    auto n = frames.flat<int32>();
    auto rows = out->matrix<int32>();
    std::vector<int32> count;
    for (int64 b = 0; b < B; ++b) {
      OP_REQUIRES(c, n(b) >= 0 && n(b) <= 100000, InvalidArgument("frames ", n(b), " of video ", b));
      count.assign(std::max(n(b), 1), 0);
      for (int64 k = 0; k < k_; ++k) {
        uint64_t x = (uint64_t(h(b)) + uint64_t(k) * 0x9E3779B9ULL) & 0xFFFFFFFFULL;
        for (int r = 0; r < 2; ++r) x = (((x >> 16) ^ x) * 0x45D9F3BULL) & 0xFFFFFFFFULL;
        x = (x >> 16) ^ x;
        const double u = double(x) / 4294967296.0;
        int64 i = int64(std::floor(u * double(n(b))));
        i = std::min<int64>(std::max<int64>(i, 0), std::max(n(b) - 1, 0));
        ++count[i];
      }
      int64 k = 0;
      for (int32 i = 0; i < int32(count.size()); ++i)
        for (int32 j = 0; j < count[i]; ++j) rows(b, k++) = i;
    }
  }

 private:
  int64 k_;
};

}  // namespace

REGISTER_OP("Yt8mSampleRows")
    .Input("base: int64")
    .Input("frames: int32")
    .Output("rows: int32")
    .Attr("num_samples: int >= 1")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      int64_t k;
      TF_RETURN_IF_ERROR(c->GetAttr("num_samples", &k));
      c->set_output(0, c->Matrix(c->Dim(c->input(0), 0), k));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Yt8mSampleRows").Device(tensorflow::DEVICE_CPU), SampleRowsOp);

REGISTER_OP("Yt8mFrameLayout")
    .Input("records: string")
    .Output("offsets: int64")
    .Output("frames: int64")
    .Output("regular: bool")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto b = c->Dim(c->input(0), 0);
      c->set_output(0, c->Matrix(b, 2));
      c->set_output(1, c->Vector(b));
      c->set_output(2, c->Vector(b));
      return absl::OkStatus();
    });

REGISTER_OP("Yt8mGatherFrames")
    .Input("records: string")
    .Input("offsets: int64")
    .Input("frames: int64")
    .Input("rows: int32")
    .Input("table: float")
    .Output("out: T")
    .Attr("T: {uint8, float}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->MakeShape({c->Dim(c->input(3), 0), c->Dim(c->input(3), 1), c->MakeDim(kDim)}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Yt8mFrameLayout").Device(tensorflow::DEVICE_CPU), FrameLayoutOp);
REGISTER_KERNEL_BUILDER(Name("Yt8mGatherFrames").Device(tensorflow::DEVICE_CPU).TypeConstraint<uint8_t>("T"),
                        GatherFramesOp<uint8_t>);
REGISTER_KERNEL_BUILDER(Name("Yt8mGatherFrames").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        GatherFramesOp<float>);
