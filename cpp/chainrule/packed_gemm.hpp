// The core's own GEMM kernel for x86-64-v4 (AVX-512).
//
// Eigen's micro-kernel keeps 12 accumulators; with AVX-512's 32 registers that leaves most of
// the register file unused, and it ran 20-25 % behind MKL and OpenBLAS on our benchmark machine.
// This one is the classic packed design: operands are copied into panels laid out in the order
// the micro-kernel reads them (or read in place where that is cheaper), and the micro-kernel
// keeps a 12 × 32 (float) tile of C in 24 registers while it walks the depth. With AVX2's 16
// registers there is no such headroom: a 6 × 16 version of this kernel ran 5-10 % behind
// Eigen's, so the x86-64-v3 build keeps Eigen (but for small batches: small_batch_forward.hpp,
// weight_gradient.hpp).
//
//   C (m × n, row-major) = alpha·op(A)·op(B) + (accumulate ? C : 0)
//
// op(A) and op(B) are strided views, so transposed operands (a_prevᵀ, Wᵀ) are packed directly
// and never copied whole. The summation order of every element depends on the shapes only.
#pragma once

#if defined(__AVX512F__)
#define CHAINRULE_PACKED_GEMM 1

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>

namespace chainrule {
namespace packed {

using Index = std::ptrdiff_t;

// One SIMD register of T and the few operations the micro-kernel needs.
template <class T>
struct Simd;

template <>
struct Simd<float> {
  using V = __m512;
  static constexpr int width = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V relu(V a) { return _mm512_max_ps(zero(), a); }  // NaN stays NaN, as std::max(a, 0)
};
template <>
struct Simd<double> {
  using V = __m512d;
  static constexpr int width = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const double* p) { return _mm512_load_pd(p); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V relu(V a) { return _mm512_max_pd(zero(), a); }
};
// 12 rows × 2 registers = 24 accumulators, plus 2 for B and 1 broadcast, of 32 registers.
constexpr int kTileRows = 12;

// A strided, read-only view of a matrix: element (i, j) is at data[i·row_stride + j·col_stride].
template <class T>
struct View {
  const T* data;
  Index row_stride;
  Index col_stride;
  T operator()(Index i, Index j) const { return data[i * row_stride + j * col_stride]; }
};

// What is done to each element of C once its sum is complete, while it is still in a register:
// add bias[j] to column j, then (relu) write max(·, 0) into `relu_out`, or over C itself when
// relu_out is null. Rounded exactly as the unfused passes C += b, a = max(C, 0) would round.
template <class T>
struct Epilogue {
  const T* bias = nullptr;  // (n), or none
  bool relu = false;
  T* relu_out = nullptr;    // (m × n, leading dimension ld_relu_out), or null: C itself
  Index ld_relu_out = 0;
};

template <class T>
T relu_of(T v) {
  return T(0) > v ? T(0) : v;  // as the vector max: NaN and −0 pass through
}

template <class T>
struct Tile {
  static constexpr int rows = kTileRows;                  // MR
  static constexpr int vectors = 2;                       // registers per tile row
  static constexpr int cols = vectors * Simd<T>::width;   // NR
};

// Blocking. A depth slice of at most kDepthBlock keeps one packed B panel (kDepthBlock × NR, 32 KiB
// in float with AVX-512) in L1 while the micro-kernel walks down a block of about kRowBlock rows
// of A, which stays in L2. Work items for the threads are such row blocks times kGroupPanels
// B panels.
constexpr Index kDepthBlock = 256;
constexpr Index kRowBlock = 192;
constexpr Index kGroupPanels = 4;
// Up to this many rows, a row-major B is read in place: packing all of B would cost more than
// the few row panels of A that reuse it.
constexpr Index kDirectBRows = 4 * kTileRows;

// Copies rows [i0, i0+rows) × depths [k0, k0+kc) of A, rows ≤ MR, into one panel: for each
// depth k, its MR values contiguously. Rows past `rows` are zero.
template <class T>
void pack_a_panel(const View<T>& a, Index i0, Index rows, Index k0, Index kc, T* out) {
  constexpr int MR = Tile<T>::rows;
  if (a.row_stride == 1 && rows == MR) {
    // Column-major A (a transposed row-major matrix, as a_prevᵀ): MR contiguous values per depth.
    // (A fixed-size memcpy: GCC compiles the equivalent loop to 12 scalar moves per depth.)
    const T* src = a.data + k0 * a.col_stride + i0;
    for (Index k = 0; k < kc; ++k) std::memcpy(out + k * MR, src + k * a.col_stride, sizeof(T) * MR);
    return;
  }
  for (Index r = 0; r < rows; ++r)
    for (Index k = 0; k < kc; ++k) out[k * MR + r] = a(i0 + r, k0 + k);
  for (Index r = rows; r < MR; ++r)
    for (Index k = 0; k < kc; ++k) out[k * MR + r] = T(0);
}

// Transposes an 8 × 8 block of floats (4 × 4 of doubles): row r of src (rows ld_src apart)
// becomes column r of dst (rows ld_dst apart).
inline void transpose_block(const float* src, Index ld_src, float* dst, Index ld_dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
inline void transpose_block(const double* src, Index ld_src, double* dst, Index ld_dst) {
  __m256d r[4], t[4];
  for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(src + i * ld_src);
  t[0] = _mm256_unpacklo_pd(r[0], r[1]);
  t[1] = _mm256_unpackhi_pd(r[0], r[1]);
  t[2] = _mm256_unpacklo_pd(r[2], r[3]);
  t[3] = _mm256_unpackhi_pd(r[2], r[3]);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t[0], t[2], 0x20));
  _mm256_storeu_pd(dst + ld_dst, _mm256_permute2f128_pd(t[1], t[3], 0x20));
  _mm256_storeu_pd(dst + 2 * ld_dst, _mm256_permute2f128_pd(t[0], t[2], 0x31));
  _mm256_storeu_pd(dst + 3 * ld_dst, _mm256_permute2f128_pd(t[1], t[3], 0x31));
}

// Copies depths [k0, k0+kc) × columns [j0, j0+cols) of B, cols ≤ NR, into one panel: for each
// depth k, its NR values contiguously. Columns past `cols` are zero.
template <class T>
void pack_b_panel(const View<T>& b, Index k0, Index kc, Index j0, Index cols, T* out) {
  constexpr int NR = Tile<T>::cols;
  if (b.col_stride == 1) {
    for (Index k = 0; k < kc; ++k) {
      const T* src = b.data + (k0 + k) * b.row_stride + j0;
      T* dst = out + k * NR;
      for (Index c = 0; c < cols; ++c) dst[c] = src[c];
      for (Index c = cols; c < NR; ++c) dst[c] = T(0);
    }
    return;
  }
  // Column-major B (a transposed row-major matrix, as Wᵀ): each column is contiguous along the
  // depth, so the panel is a transpose, done in register blocks where a whole block fits.
  constexpr Index kBlock = 32 / Index(sizeof(T));
  const T* col0 = b.data + j0 * b.col_stride + k0 * b.row_stride;
  Index c = 0;
  if (b.row_stride == 1) {
    for (; c + kBlock <= cols; c += kBlock) {
      Index k = 0;
      for (; k + kBlock <= kc; k += kBlock)
        transpose_block(col0 + c * b.col_stride + k, b.col_stride, out + k * NR + c, NR);
      for (; k < kc; ++k)
        for (Index cc = c; cc < c + kBlock; ++cc) out[k * NR + cc] = col0[cc * b.col_stride + k];
    }
  }
  for (; c < cols; ++c)
    for (Index k = 0; k < kc; ++k) out[k * NR + c] = col0[c * b.col_stride + k * b.row_stride];
  for (Index k = 0; k < kc; ++k)
    for (Index cc = cols; cc < NR; ++cc) out[k * NR + cc] = T(0);
}

// c (MR × NR, leading dimension ldc) = alpha·(A tile · B tile) + (accumulate ? c : 0), then
// the epilogue if one is given (bias and relu_out already offset to this tile).
// The A tile is a packed panel (kPackedA) or MR rows of a row-major A read in place (lda apart);
// the B tile is a packed panel (kPackedB) or NR columns of a row-major B in place (ldb apart).
// Forced inline: in the large binding TU GCC's inliner gave up on it, and the out-of-line call
// (accumulators spilled around it) cost ~15% of a batch-1024 training step.
template <class T, bool kPackedA, bool kPackedB>
EIGEN_ALWAYS_INLINE void micro_kernel(Index kc, const T* a, Index lda, const T* b, Index ldb,
                                      T* c, Index ldc, T alpha, bool accumulate,
                                      const Epilogue<T>* ep = nullptr) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int MR = Tile<T>::rows, NV = Tile<T>::vectors, W = S::width;
  const Index a_row = kPackedA ? 1 : lda;
  const Index a_depth = kPackedA ? MR : 1;
  const Index b_depth = kPackedB ? NV * W : ldb;
  // The tile of C is read (or written) once, at the end: ask for it now.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NV * W - 1), _MM_HINT_T0);
  }
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = S::zero();
  for (Index k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = kPackedB ? S::load(b + v * W) : S::loadu(b + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V ar = S::set1(a[r * a_row]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = S::fma(ar, bv[v], acc[r][v]);
    }
    a += a_depth;
    b += b_depth;
  }
  const V va = S::set1(alpha);
  if (ep == nullptr) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        T* dst = c + r * ldc + v * W;
        S::storeu(dst, accumulate ? S::fma(va, acc[r][v], S::loadu(dst)) : S::mul(va, acc[r][v]));
      }
    return;
  }
  V bias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) bias[v] = ep->bias ? S::loadu(ep->bias + v * W) : S::zero();
  const bool relu_in_place = ep->relu && ep->relu_out == nullptr;
  const bool relu_apart = ep->relu && ep->relu_out != nullptr;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      T* dst = c + r * ldc + v * W;
      V z = accumulate ? S::fma(va, acc[r][v], S::loadu(dst)) : S::mul(va, acc[r][v]);
      if (ep->bias) z = S::add(z, bias[v]);
      S::storeu(dst, relu_in_place ? S::relu(z) : z);
      if (relu_apart) S::storeu(ep->relu_out + r * ep->ld_relu_out + v * W, S::relu(z));
    }
}

template <class T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

// Packed panels of A and B, shared by the threads of one product. They belong to the thread
// that calls gemm, are grown when needed and kept between calls.
template <class T>
struct Packed {
  AlignedVector<T> a, b;
};

template <class T>
void grow(AlignedVector<T>& v, Index size) {
  if (v.size() < std::size_t(size)) v.resize(std::size_t(size));
}

// How the product is cut: a function of the shapes and storage orders only.
template <class T>
struct Plan {
  static constexpr int MR = Tile<T>::rows, NR = Tile<T>::cols;
  Index m, n, k;
  Index kc;                // depth slice: equal slices of at most kDepthBlock
  Index mc;                // rows per row block, a multiple of MR
  Index row_blocks, col_groups;
  Index a_panels, b_panels;
  Index a_in_place;        // leading A panels read in place (full panels of a row-major A)
  bool b_in_place;         // full B panels read in place (a row-major B and few rows)

  Plan(Index m_, Index n_, Index k_, const View<T>& a, const View<T>& b) : m(m_), n(n_), k(k_) {
    const Index slices = (k + kDepthBlock - 1) / kDepthBlock;
    kc = (k + slices - 1) / slices;
    row_blocks = (m + kRowBlock - 1) / kRowBlock;
    mc = ((m + row_blocks - 1) / row_blocks + MR - 1) / MR * MR;
    row_blocks = (m + mc - 1) / mc;
    col_groups = (n + kGroupPanels * NR - 1) / (kGroupPanels * NR);
    a_panels = (m + MR - 1) / MR;
    b_panels = (n + NR - 1) / NR;
    a_in_place = a.col_stride == 1 ? m / MR : 0;
    b_in_place = b.col_stride == 1 && m <= kDirectBRows;
  }
  Index items() const { return row_blocks * col_groups; }
  bool b_panel_packed(Index q) const { return !b_in_place || (q + 1) * NR > n; }
};

// The epilogue on element (i, j) of C, whose sum is complete in c: as in the micro-kernel.
template <class T>
void apply_epilogue(const Epilogue<T>& ep, Index i, Index j, T& c) {
  if (ep.bias) c = c + ep.bias[j];
  if (ep.relu) (ep.relu_out ? ep.relu_out[i * ep.ld_relu_out + j] : c) = relu_of(c);
}

// C tile (i, j) of one depth slice: C[i:i+MR, j:j+NR] (op)= alpha·A[i:i+MR, k0:k0+kc]·B[...],
// then the epilogue if given (on the last slice).
template <class T>
void run_tile(const Plan<T>& p, Index i, Index j, Index k0, Index kc, const View<T>& a,
              const View<T>& b, const T* packed_a, const T* packed_b, T* c, Index ldc, T alpha,
              bool acc, const Epilogue<T>* ep) {
  constexpr int MR = Tile<T>::rows, NR = Tile<T>::cols;
  const Index rows = std::min<Index>(MR, p.m - i), cols = std::min<Index>(NR, p.n - j);
  const Index qa = i / MR, qb = j / NR;
  const bool a_direct = qa < p.a_in_place, b_direct = !p.b_panel_packed(qb);
  const T* a_tile = a_direct ? a.data + i * a.row_stride + k0
                             : packed_a + (qa - p.a_in_place) * MR * kc;
  const T* b_tile = b_direct ? b.data + k0 * b.row_stride + j : packed_b + qb * NR * kc;
  auto tile = [&](T* dst, Index ld, T scale, bool add, const Epilogue<T>* e) {
    if (a_direct && b_direct)
      micro_kernel<T, false, false>(kc, a_tile, a.row_stride, b_tile, b.row_stride, dst, ld,
                                    scale, add, e);
    else if (a_direct)
      micro_kernel<T, false, true>(kc, a_tile, a.row_stride, b_tile, 0, dst, ld, scale, add, e);
    else if (b_direct)
      micro_kernel<T, true, false>(kc, a_tile, 0, b_tile, b.row_stride, dst, ld, scale, add, e);
    else
      micro_kernel<T, true, true>(kc, a_tile, 0, b_tile, 0, dst, ld, scale, add, e);
  };
  T* c_tile = c + i * ldc + j;
  if (rows == MR && cols == NR) {
    if (ep == nullptr) return tile(c_tile, ldc, alpha, acc, nullptr);
    Epilogue<T> here = *ep;  // the same, offset to this tile
    if (here.bias) here.bias += j;
    if (here.relu_out) here.relu_out += i * here.ld_relu_out + j;
    return tile(c_tile, ldc, alpha, acc, &here);
  }
  // An edge tile: computed whole into a scratch tile, then the valid part is merged, rounded as
  // in the micro-kernel (alpha·sum, or one fused multiply-add, then the epilogue).
  alignas(64) T edge[MR * NR];
  tile(edge, Index(NR), T(1), false, nullptr);
  for (Index r = 0; r < rows; ++r)
    for (Index cc = 0; cc < cols; ++cc) {
      T& dst = c_tile[r * ldc + cc];
      const T sum = edge[r * NR + cc];
      dst = acc ? std::fma(alpha, sum, dst) : alpha * sum;
      if (ep) apply_epilogue(*ep, i + r, j + cc, dst);
    }
}

// Whether a product is worth the kernel. Narrower results (the 10 outputs of a classifier) would
// mostly compute padding, and below about 256 K multiply-adds (the 32 × 64 · 64 × 32 products of
// a small net) the packing and set-up cost more than the kernel saves: Eigen does both better.
template <class T>
constexpr bool fits_kernel(Index m, Index n, Index k) {
  return m >= Tile<T>::rows && n >= Tile<T>::cols && double(m) * double(n) * double(k) >= 1 << 18;
}

// C (m × n, row-major, leading dimension ldc) = alpha·A·B + (accumulate ? C : 0), A m × k,
// B k × n, on up to `threads` threads. Every element is summed in the same order whatever the
// thread count (the depth slices depend on k only), so results are bit-identical.
// With an epilogue, each element of C then gets it once its sum is complete.
template <class T>
void gemm(Index m, Index n, Index k, const View<T>& a, const View<T>& b, T* c, Index ldc,
          T alpha, bool accumulate, int threads, const Epilogue<T>* epilogue = nullptr) {
  constexpr int MR = Tile<T>::rows, NR = Tile<T>::cols;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) {
        if (!accumulate) c[i * ldc + j] = T(0);
        if (epilogue) apply_epilogue(*epilogue, i, j, c[i * ldc + j]);
      }
    return;
  }
  const Plan<T> p(m, n, k, a, b);
  thread_local Packed<T> packed;
  grow(packed.a, (p.a_panels - p.a_in_place) * MR * p.kc);
  grow(packed.b, p.b_panels * NR * p.kc);
  const T* const packed_a = packed.a.data();
  const T* const packed_b = packed.b.data();
  T* const pack_a_to = packed.a.data();
  T* const pack_b_to = packed.b.data();
  threads = int(std::max<Index>(1, std::min<Index>(threads, p.items())));
  // The panels that are packed (not read in place): B's first, then A's. The threads share
  // out only these, so none packs alone while the other skips panels read in place.
  const Index b_first_packed = p.b_in_place ? p.b_panels - (n % NR != 0) : 0;
  const Index b_to_pack = p.b_panels - b_first_packed;
  const Index to_pack = b_to_pack + (p.a_panels - p.a_in_place);
  // Pack slice [k0, k0 + kc)'s t-th packed panel.
  auto pack_panel = [&](Index t, Index k0, Index kc) {
    if (t < b_to_pack) {
      const Index q = b_first_packed + t;
      pack_b_panel(b, k0, kc, q * NR, std::min<Index>(NR, n - q * NR), pack_b_to + q * NR * kc);
    } else {
      const Index qa = p.a_in_place + (t - b_to_pack);
      pack_a_panel(a, qa * MR, std::min<Index>(MR, m - qa * MR), k0, kc,
                   pack_a_to + (qa - p.a_in_place) * MR * kc);
    }
  };
  // Work item: a row block times a group of B panels. Within one, each B panel stays in L1
  // while the micro-kernel walks down the row block.
  auto run_item = [&](Index item, Index k0, Index kc) {
    const bool acc = accumulate || k0 > 0;  // later slices add to the earlier ones
    const Epilogue<T>* ep = k0 + kc == k ? epilogue : nullptr;
    const Index i0 = (item / p.col_groups) * p.mc, i_end = std::min(m, i0 + p.mc);
    const Index j0 = (item % p.col_groups) * kGroupPanels * NR;
    const Index j_end = std::min(n, j0 + kGroupPanels * NR);
    for (Index j = j0; j < j_end; j += NR)
      for (Index i = i0; i < i_end; i += MR)
        run_tile(p, i, j, k0, kc, a, b, packed_a, packed_b, c, ldc, alpha, acc, ep);
  };
  if (threads == 1) {  // no parallel region (threads.hpp: parallel_for)
    for (Index k0 = 0; k0 < k; k0 += p.kc) {
      const Index kc = std::min(p.kc, k - k0);
      for (Index t = 0; t < to_pack; ++t) pack_panel(t, k0, kc);
      for (Index item = 0; item < p.items(); ++item) run_item(item, k0, kc);
    }
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  for (Index k0 = 0; k0 < k; k0 += p.kc) {
    const Index kc = std::min(p.kc, k - k0);
    // Each loop ends with a barrier, so no thread reads a panel before it is complete, nor
    // overwrites one still in use.
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (Index t = 0; t < to_pack; ++t) pack_panel(t, k0, kc);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (Index item = 0; item < p.items(); ++item) run_item(item, k0, kc);
  }
}

}  // namespace packed
}  // namespace chainrule

#endif
