// The weight gradient of a small batch, dW = scale·a_prevᵀ·δ, and its Σ dW² in the same pass.
//
// At batch 32 the depth of this product is 32, so a general GEMM spends a noticeable share of
// its time outside the multiply-adds: zeroing dW (Eigen only adds to its result), packing both
// operands, and loading and storing every tile of dW around 32 rounds of FMAs; the training step
// then reads all of dW once more for the gradient norm. In a batch-32 profile of 784-256-128-10
// (Zen 4), the zeroing and the norm pass had 3.2 % and 2.6 % of the step. Here each tile of dW
// is summed in registers straight from a_prev and δ (both small enough to stay in cache), scaled
// and stored once, and each group of rows is squared while it is still in L1.
//
// Every element is summed over the batch in order, then scaled: the bits depend on the shapes
// only. Rows of dW are shared among threads in blocks that depend on the shapes only, and the
// blocks' Σ dW² are added in block order, so both results are the same for any thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>

#include "gemm.hpp"
#include "outer_product_tile.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace chainrule {

// Above this depth (batch size) Eigen's GEMM with a separate norm pass is faster. Zen 4, caches
// flushed between calls, 784 → 256: 6 % and 4 % faster here at depth 32 and 64, 3 % and 4 %
// slower at 96 and 128 (256 → 128: −1 %, +3 %, −5 %, −6 %).
constexpr Index kMaxWeightGradientDepth = 64;

namespace detail {

// dW rows [i, i + R), columns [j, j + C·P): dW = scale·Σ_k a[k, i + r]·δ[k, j..], with a (depth
// × in) and δ (depth × out) row-major.
template <int R, int C, class T>
EIGEN_ALWAYS_INLINE void weight_gradient_tile(const T* a, Index lda, const T* d, Index ldd,
                                              Index depth, T scale, T* dw, Index ldw,
                                              bool accumulate) {
  using namespace Eigen::internal;
  constexpr int P = kSimdWidth<T>;
  SimdPacket<T> c[R][C];
  outer_product_tile<R, C, /*LeftTransposed=*/true>(a, lda, d, ldd, depth, c);
  const SimdPacket<T> s = pset1<SimdPacket<T>>(scale);
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q) {
      T* out = dw + r * ldw + q * P;
      const SimdPacket<T> v = pmul(s, c[r][q]);
      pstoreu(out, accumulate ? padd(ploadu<SimdPacket<T>>(out), v) : v);
    }
}

// All columns of dW rows [i, i + R) (cols is a multiple of P).
template <int R, class T>
EIGEN_ALWAYS_INLINE void weight_gradient_row_group(const T* a, Index lda, const T* d, Index ldd,
                                                   Index depth, Index cols, T scale, T* dw,
                                                   Index ldw, bool accumulate) {
  constexpr int P = kSimdWidth<T>;
  Index j = 0;
  for (; j + 2 * P <= cols; j += 2 * P)
    weight_gradient_tile<R, 2>(a, lda, d + j, ldd, depth, scale, dw + j, ldw, accumulate);
  if (j < cols)
    weight_gradient_tile<R, 1>(a, lda, d + j, ldd, depth, scale, dw + j, ldw, accumulate);
}

// sum[·] += x² over rows × cols values (cols a multiple of P), in 8 running sums: the squares
// are taken while the rows just written are still in L1. In the tile's epilogue instead, where
// registers are short, they cost 20 % of the product.
template <class T>
EIGEN_ALWAYS_INLINE void add_squares(const T* x, Index rows, Index cols, Index ld,
                                     SimdPacket<T> (&sum)[8]) {
  using namespace Eigen::internal;
  constexpr int P = kSimdWidth<T>;
  for (Index r = 0; r < rows; ++r) {
    const T* row = x + r * ld;
    Index j = 0;
    for (; j + 8 * P <= cols; j += 8 * P)
      for (int q = 0; q < 8; ++q) {  // constant indices keep the sums in registers
        const SimdPacket<T> v = ploadu<SimdPacket<T>>(row + j + q * P);
        sum[q] = pmadd(v, v, sum[q]);
      }
    for (; j < cols; j += P) {
      const SimdPacket<T> v = ploadu<SimdPacket<T>>(row + j);
      sum[0] = pmadd(v, v, sum[0]);
    }
  }
}

// Rows [begin, end) of dW; returns their Σ dW².
template <class T>
T weight_gradient_rows(const T* a, Index lda, const T* d, Index ldd, Index depth, Index cols,
                       T scale, T* dw, Index ldw, Index begin, Index end, bool accumulate) {
  using namespace Eigen::internal;
  constexpr int R = 6;  // 12 accumulators: fits AVX2's and SSE's 16 registers with the operands
  SimdPacket<T> sum[8];
  for (auto& s : sum) s = pset1<SimdPacket<T>>(T(0));
  Index i = begin;
  for (; i + R <= end; i += R) {
    weight_gradient_row_group<R>(a + i, lda, d, ldd, depth, cols, scale, dw + i * ldw, ldw,
                                 accumulate);
    add_squares(dw + i * ldw, R, cols, ldw, sum);
  }
  for (; i < end; ++i) {
    weight_gradient_row_group<1>(a + i, lda, d, ldd, depth, cols, scale, dw + i * ldw, ldw,
                                 accumulate);
    add_squares(dw + i * ldw, 1, cols, ldw, sum);
  }
  for (int q = 0; q < 4; ++q) sum[q] = padd(sum[q], sum[q + 4]);
  return predux(padd(padd(sum[0], sum[1]), padd(sum[2], sum[3])));
}

}  // namespace detail

// Whether weight_gradient takes a product of this depth (batch) and width (out): a short depth,
// and a width in whole SIMD packets (a 10-wide output layer stays with the GEMM).
template <class T>
bool weight_gradient_fits(Index depth, Index cols) {
  constexpr int P = kSimdWidth<T>;
  return depth <= kMaxWeightGradientDepth && cols % P == 0;
}

// dW (in × out) = scale·a_prevᵀ·δ + (accumulate ? dW : 0) with a_prev (B × in) and δ (B × out);
// returns Σ dW² of the result. For products where weight_gradient_fits. Accumulating into a
// zeroed dW gives the same values as overwriting it, as with the packed products.
template <class T>
T weight_gradient(const ConstMatrixRef<T>& a_prev, const ConstMatrixRef<T>& delta, T scale,
                  MatrixMap<T>& dW, bool accumulate = false) {
  const Index depth = a_prev.rows(), rows = dW.rows(), cols = dW.cols();
  auto rows_block = [&](Index begin, Index end) {
    return detail::weight_gradient_rows<T>(a_prev.data(), a_prev.outerStride(), delta.data(),
                                           delta.outerStride(), depth, cols, scale, dW.data(),
                                           dW.outerStride(), begin, end, accumulate);
  };
  // Blocks of rows sized from the shapes alone (whole 6-row tiles), each about 64 K
  // multiply-adds or more, where two threads start to gain, and at most kMaxBlocks of them.
  constexpr Index kMaxBlocks = 64;
  const double work_per_row = double(depth) * double(cols);
  Index block = std::max<Index>(48, Index(double(1 << 16) / std::max(work_per_row, 1.0)) / 6 * 6);
  block = std::max(block, (rows + kMaxBlocks - 1) / kMaxBlocks / 6 * 6 + 6);
  const Index n_blocks = (rows + block - 1) / block;
  if (n_blocks <= 1) return rows_block(0, rows);
  const bool small = double(rows) * work_per_row < kMinParallelWork;
  const int threads = small ? 1 : int(std::min<Index>(get_num_threads(), n_blocks));
  T sums[kMaxBlocks];
  parallel_for(n_blocks, threads, [&](Index q) {
    sums[q] = rows_block(q * block, std::min(rows, (q + 1) * block));
  });
  T total = 0;
  for (Index q = 0; q < n_blocks; ++q) total += sums[q];
  return total;
}

// Where the training step uses it (CHAINRULE_SMALL_BATCH_KERNELS), compiled once, for float
// and double, in network.cpp; the files that include this header call those instead of
// compiling them again.
#define CHAINRULE_WEIGHT_GRADIENT_INSTANCES(PREFIX, T)                                             \
  PREFIX T weight_gradient<T>(const ConstMatrixRef<T>&, const ConstMatrixRef<T>&, T,               \
                              MatrixMap<T>&, bool);
#ifdef CHAINRULE_SMALL_BATCH_KERNELS
CHAINRULE_WEIGHT_GRADIENT_INSTANCES(extern template, float)
CHAINRULE_WEIGHT_GRADIENT_INSTANCES(extern template, double)
#endif

}  // namespace chainrule
