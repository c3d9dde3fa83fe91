// Matrix products of the core, threaded deterministically.
//
// Eigen's own multithreaded GEMM chooses its k-blocking from the thread count, so the rounding
// of every result element changes with the number of threads. Here instead the result is cut
// into blocks that depend on the shapes only (never on the thread count); each block is one
// single-threaded Eigen product over the full depth, and threads merely share out the blocks.
// Every element is therefore computed by exactly the same instructions in the same order
// whatever the thread count: training with 1 or N threads gives bit-identical weights.
#pragma once

#include <algorithm>

#include "threads.hpp"
#include "types.hpp"

namespace chainrule {

// How a (rows × cols) result of depth `depth` is cut: along rows or columns, in `count` blocks
// of `size` (the last one may be smaller). A function of the shapes only.
struct GemmSplit {
  bool by_rows = false;
  Index count = 1;
  Index size = 0;
};

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

inline GemmSplit gemm_split(Index rows, Index cols, Index depth) {
  GemmSplit s;
  // Below ~1M multiply-adds a product takes a few tens of µs: not worth a parallel region.
  constexpr double kMinWork = 1 << 20;
  const bool by_rows = rows >= cols;
  const Index dim = by_rows ? rows : cols;
  s.by_rows = by_rows;
  s.size = dim;
  if (double(rows) * double(cols) * double(depth) < kMinWork || dim < 64) return s;
  // Few, large blocks: every block packs the whole other operand again, so small blocks cost
  // memory traffic. An even count of about 256-wide blocks (at least 2, at most 16) keeps two
  // or four threads evenly loaded; sizes are multiples of 8 to keep the micro-kernels' tiles.
  Index count = std::min<Index>(16, std::max<Index>(2, dim / 256));
  count += count & 1;
  s.size = round_up((dim + count - 1) / count, 8);
  s.count = (dim + s.size - 1) / s.size;
  return s;
}

// dst = alpha·(lhs·rhs) + (accumulate ? dst : 0), with the fixed split above.
template <class Dst, class Lhs, class Rhs, class T>
void gemm(Dst&& dst, const Lhs& lhs, const Rhs& rhs, T alpha, bool accumulate) {
  const Index rows = dst.rows(), cols = dst.cols(), depth = lhs.cols();
  if (rows == 0 || cols == 0) return;
  const GemmSplit s = gemm_split(rows, cols, depth);
  auto block = [&](Index i) {
    const Index start = i * s.size;
    const Index len = std::min(s.size, (s.by_rows ? rows : cols) - start);
    if (s.by_rows) {
      auto d = dst.middleRows(start, len);
      if (accumulate) d.noalias() += alpha * (lhs.middleRows(start, len) * rhs);
      else if (alpha == T(1)) d.noalias() = lhs.middleRows(start, len) * rhs;
      else d.noalias() = alpha * (lhs.middleRows(start, len) * rhs);
    } else {
      auto d = dst.middleCols(start, len);
      if (accumulate) d.noalias() += alpha * (lhs * rhs.middleCols(start, len));
      else if (alpha == T(1)) d.noalias() = lhs * rhs.middleCols(start, len);
      else d.noalias() = alpha * (lhs * rhs.middleCols(start, len));
    }
  };
  const int threads = static_cast<int>(std::min<Index>(get_num_threads(), s.count));
  if (threads <= 1) {
    for (Index i = 0; i < s.count; ++i) block(i);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (Index i = 0; i < s.count; ++i) block(i);
}

}  // namespace chainrule
