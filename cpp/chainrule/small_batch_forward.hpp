// A layer's forward product for a small batch, z = a_prev·W + b (and a = relu(z)), reading W
// where it lies.
//
// A general GEMM copies ("packs") both operands into panels first. At a large batch the copy
// of W is spread over many rows of a_prev; at batch 32 it is not: in a batch-32 profile of
// 784-256-128-10 (Zen 4), packing W took 5.6 % of the training step. Here each tile of z, 4 rows
// by 3 SIMD packets, is summed in registers straight from a_prev's rows (broadcast) and W's rows
// (loaded in place), then b is added, relu applied, and the tile stored once. Measured alone on
// Zen 4: the 784 → 256 product at batch 32 took 122 µs against Eigen's 139 µs. The depth is
// walked in slices (below); between slices a tile's partial sums wait in z.
//
// Every element is summed over the depth in order, then b added (a partial sum stored and
// loaded again continues exactly): the bits depend on the shapes only, and threads share out
// whole column panels, so any thread count gives the same bits.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <type_traits>

#include "gemm.hpp"
#include "outer_product_tile.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace chainrule {

// The batch sizes it takes: from 4 rows (one row is Eigen's GEMV, bound by reading W) to 64
// (at 96 and 128 rows Eigen's packed product, its copy of W spread over more rows, was as fast).
constexpr Index kMinSmallBatchRows = 4, kMaxSmallBatchRows = 64;

namespace detail {

// The depth is cut into equal slices of at most this many rows of W, so that a slice of a
// column panel stays in cache while every row tile of the batch passes over it. W's rows are
// 1 KiB apart at 256 outputs (float), so a panel's lines fall into few cache sets: over the
// full depth of 784 they did not fit, and every 4-row tile read them again from further out.
// Equal slices, as in the packed kernel, avoid a short last one.
constexpr Index kSmallBatchMaxSlice = 256;

// z rows [0, R), columns [0, C·P) of this tile, over the depth slice that x (R × depth) and W
// (depth × ·), both row-major, start at. A slice after the first continues the partial sums left
// in z; the last one adds b, stores z and applies relu.
template <int R, int C, class T>
EIGEN_ALWAYS_INLINE void small_batch_tile(const T* x, Index ldx, const T* W, Index ldw,
                                          Index depth, bool first, bool last, const T* b, T* z,
                                          Index ldz, T* a, Index lda) {
  using namespace Eigen::internal;
  constexpr int P = kSimdWidth<T>;
  SimdPacket<T> c[R][C];
  outer_product_tile<R, C, /*LeftTransposed=*/false>(x, ldx, W, ldw, depth, c,
                                                      first ? nullptr : z, ldz);
  if (!last) {
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < C; ++q) pstoreu(z + r * ldz + q * P, c[r][q]);
    return;
  }
  const SimdPacket<T> zero = pset1<SimdPacket<T>>(T(0));
  for (int q = 0; q < C; ++q) {
    const SimdPacket<T> b_q = ploadu<SimdPacket<T>>(b + q * P);
    for (int r = 0; r < R; ++r) {
      const SimdPacket<T> z_rq = padd(c[r][q], b_q);
      pstoreu(z + r * ldz + q * P, z_rq);
      // The same operation, and so the same bits (NaN stays NaN), as cwiseMax(0).
      if (a != nullptr) pstoreu(a + r * lda + q * P, pmax(z_rq, zero));
    }
  }
}

// All rows of z for the column panel [j, j + C·P), one depth slice at a time.
template <int C, class T>
EIGEN_ALWAYS_INLINE void small_batch_panel(const T* x, Index ldx, Index rows, const T* W,
                                           Index ldw, Index depth, const T* b, T* z, Index ldz,
                                           T* a, Index lda, Index j) {
  constexpr int R = 4;  // 4 × 3 packets: 12 accumulators, the most AVX2's 16 registers allow
  T* a_j = a != nullptr ? a + j : nullptr;
  const Index n_slices = std::max<Index>(1, (depth + kSmallBatchMaxSlice - 1) / kSmallBatchMaxSlice);
  const Index slice_size = (depth + n_slices - 1) / n_slices;
  for (Index s = 0; s < n_slices; ++s) {  // one slice, of depth 0, for a zero depth: z = b
    const Index k = s * slice_size, slice = std::min(slice_size, depth - k);
    const bool first = s == 0, last = s + 1 == n_slices;
    const T* right = W + k * ldw + j;
    auto tile = [&](Index i, auto rows_in_tile) {
      small_batch_tile<decltype(rows_in_tile)::value, C>(
          x + i * ldx + k, ldx, right, ldw, slice, first, last, b + j,
          z + i * ldz + j, ldz, a_j ? a_j + i * lda : nullptr, lda);
    };
    Index i = 0;
    for (; i + R <= rows; i += R) tile(i, std::integral_constant<int, R>());
    const Index left = rows - i;
    if (left == 3) tile(i, std::integral_constant<int, 3>());
    if (left == 2) tile(i, std::integral_constant<int, 2>());
    if (left == 1) tile(i, std::integral_constant<int, 1>());
  }
}

}  // namespace detail

template <class T>
bool small_batch_forward_fits(Index rows, Index cols) {
  constexpr int P = kSimdWidth<T>;
  return rows >= kMinSmallBatchRows && rows <= kMaxSmallBatchRows && cols % P == 0;
}

// z (B × out) = x (B × in)·W (in × out) + b, and relu = max(z, 0) if relu is given (it may be z
// itself). For shapes where small_batch_forward_fits.
template <class T>
void small_batch_forward(const ConstMatrixRef<T>& x, const ConstMatrixMap<T>& W, const T* b,
                         MatrixRef<T> z, MatrixRef<T>* relu) {
  constexpr int P = kSimdWidth<T>;
  constexpr int C = 3;
  const Index rows = z.rows(), cols = z.cols(), depth = x.cols();
  T* a = relu != nullptr ? relu->data() : nullptr;
  const Index lda = relu != nullptr ? relu->outerStride() : 0;
  const Index n_panels = (cols + C * P - 1) / (C * P);
  auto panel = [&](Index p) {
    const Index j = p * C * P, width = std::min<Index>(C * P, cols - j);
    const T *xd = x.data(), *Wd = W.data();
    if (width == 3 * P)
      detail::small_batch_panel<3>(xd, x.outerStride(), rows, Wd, W.outerStride(), depth, b,
                                   z.data(), z.outerStride(), a, lda, j);
    else if (width == 2 * P)
      detail::small_batch_panel<2>(xd, x.outerStride(), rows, Wd, W.outerStride(), depth, b,
                                   z.data(), z.outerStride(), a, lda, j);
    else
      detail::small_batch_panel<1>(xd, x.outerStride(), rows, Wd, W.outerStride(), depth, b,
                                   z.data(), z.outerStride(), a, lda, j);
  };
  const bool small = double(rows) * double(cols) * double(depth) < kMinParallelWork;
  const int threads = small ? 1 : int(std::min<Index>(get_num_threads(), n_panels));
  parallel_for(n_panels, threads, panel);
}

// Where the training step uses it (CHAINRULE_SMALL_BATCH_KERNELS), compiled once, for float
// and double, in network.cpp; the files that include this header call those instead of
// compiling them again.
#define CHAINRULE_SMALL_BATCH_FORWARD_INSTANCES(PREFIX, T)                                         \
  PREFIX void small_batch_forward<T>(const ConstMatrixRef<T>&, const ConstMatrixMap<T>&, const T*, \
                                     MatrixRef<T>, MatrixRef<T>*);
#ifdef CHAINRULE_SMALL_BATCH_KERNELS
CHAINRULE_SMALL_BATCH_FORWARD_INSTANCES(extern template, float)
CHAINRULE_SMALL_BATCH_FORWARD_INSTANCES(extern template, double)
#endif

}  // namespace chainrule
