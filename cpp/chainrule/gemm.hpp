// Matrix products of the core, threaded deterministically.
//
// Eigen's own multithreaded GEMM chooses its k-blocking from the thread count, so the rounding
// of every result element changes with the number of threads. Here instead the result is cut
// into blocks that depend on the shapes only (never on the thread count); each block is one
// single-threaded Eigen product over the full depth, and threads merely share out the blocks.
// Every element is therefore computed by exactly the same instructions in the same order
// whatever the thread count: training with 1 or N threads gives bit-identical weights.
//
// Each block runs Eigen's GEMM kernel (general_matrix_matrix_product) directly, with packing
// buffers that belong to the calling thread and are kept from one product to the next. Eigen's
// own `A * B` allocates them on every product, megabytes at a time for a large batch, which put
// a malloc/free pair (and page faults when the heap is trimmed) into every training step.
//
// Where the module is compiled for AVX-512, all but narrow or tiny products run on the core's
// own kernel instead (packed_gemm.hpp), which is faster than Eigen's there. Its
// summation order depends on the depth only, so it threads freely and stays bit-identical.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <type_traits>
#include <vector>

#include "packed_gemm.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace chainrule {

namespace detail {

// Eigen's blocking sizes for one thread, pointing at buffers that are grown, never shrunk.
template <class T>
class ReusedBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  // Sizes for Eigen's column-major kernel problem: (m × k)·(k × n).
  void prepare(Index m, Index n, Index k) {
    this->m_mc = m;
    this->m_nc = n;
    this->m_kc = k;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(this->m_kc, this->m_mc, this->m_nc,
                                                                  Index(1));
    const std::size_t size_a = std::size_t(this->m_mc * this->m_kc);
    const std::size_t size_b = std::size_t(this->m_kc * this->m_nc);
    if (packed_a_.size() < size_a) packed_a_.resize(size_a);
    if (packed_b_.size() < size_b) packed_b_.resize(size_b);
    this->m_blockA = packed_a_.data();
    this->m_blockB = packed_b_.data();
  }

 private:
  std::vector<T, Eigen::aligned_allocator<T>> packed_a_, packed_b_;
};

#ifdef CHAINRULE_PACKED_GEMM
// The strided view of a row- or column-major operand with unit inner stride.
template <class Xpr>
packed::View<typename std::decay_t<Xpr>::Scalar> strided_view(const Xpr& x) {
  if constexpr (std::decay_t<Xpr>::IsRowMajor) return {x.data(), x.outerStride(), 1};
  else return {x.data(), 1, x.outerStride()};
}
#endif

template <class Xpr>
constexpr int storage_order() {
  return std::decay_t<Xpr>::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor;
}

// d = alpha·(lhs·rhs) + (accumulate ? d : 0) for one block, single-threaded. d is row-major;
// lhs and rhs are row- or column-major views with unit inner stride (transposes included).
template <class Dst, class Lhs, class Rhs, class T>
void gemm_serial(Dst&& d, const Lhs& lhs, const Rhs& rhs, T alpha, bool accumulate) {
  const Index rows = d.rows(), cols = d.cols(), depth = lhs.cols();
  // A single row or column is a GEMV, and tiny products a coefficient loop, in Eigen: neither
  // packs nor allocates, so Eigen's expressions are kept for them.
  if (rows == 1 || cols == 1 || depth + rows + cols < 20) {
    if (accumulate) d.noalias() += alpha * (lhs * rhs);
    else if (alpha == T(1)) d.noalias() = lhs * rhs;
    else d.noalias() = alpha * (lhs * rhs);
    return;
  }
  static_assert(std::decay_t<Dst>::IsRowMajor, "the core's results are row-major");
  if (!accumulate) d.setZero();
  if (depth == 0) return;
  thread_local ReusedBlocking<T> blocking;
  blocking.prepare(cols, rows, depth);  // a row-major result is Eigen's column-major dᵀ
  using Kernel = Eigen::internal::general_matrix_matrix_product<
      Index, T, storage_order<Lhs>(), false, T, storage_order<Rhs>(), false, Eigen::RowMajor, 1>;
  Kernel::run(rows, cols, depth, lhs.data(), lhs.outerStride(), rhs.data(), rhs.outerStride(),
              d.data(), 1, d.outerStride(), alpha, blocking, nullptr);
}

}  // namespace detail

// How a (rows × cols) result of depth `depth` is cut: along rows or columns, in `count` blocks
// of `size` (the last one may be smaller). A function of the shapes only.
struct GemmSplit {
  bool by_rows = false;
  Index count = 1;
  Index size = 0;
};

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

// Below ~1M multiply-adds a product takes a few tens of µs: not worth a parallel region.
constexpr double kMinParallelWork = 1 << 20;

inline GemmSplit gemm_split(Index rows, Index cols, Index depth) {
  GemmSplit s;
  const bool by_rows = rows >= cols;
  const Index dim = by_rows ? rows : cols;
  s.by_rows = by_rows;
  s.size = dim;
  if (double(rows) * double(cols) * double(depth) < kMinParallelWork || dim < 64) return s;
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
#ifdef CHAINRULE_PACKED_GEMM
  if (packed::fits_kernel<T>(rows, cols, depth)) {
    static_assert(std::decay_t<Dst>::IsRowMajor, "the core's results are row-major");
    const bool small = double(rows) * double(cols) * double(depth) < kMinParallelWork;
    packed::gemm<T>(rows, cols, depth, detail::strided_view(lhs), detail::strided_view(rhs),
                    dst.data(), dst.outerStride(), alpha, accumulate,
                    small ? 1 : get_num_threads());
    return;
  }
#endif
  const GemmSplit s = gemm_split(rows, cols, depth);
  auto block = [&](Index i) {
    const Index start = i * s.size;
    const Index len = std::min(s.size, (s.by_rows ? rows : cols) - start);
    if (s.by_rows)
      detail::gemm_serial(dst.middleRows(start, len), lhs.middleRows(start, len), rhs, alpha,
                          accumulate);
    else
      detail::gemm_serial(dst.middleCols(start, len), lhs, rhs.middleCols(start, len), alpha,
                          accumulate);
  };
  parallel_for(s.count, static_cast<int>(std::min<Index>(get_num_threads(), s.count)), block);
}

// z = lhs·rhs + b (b added to every row) and, if relu is given, relu = max(z, 0), where relu may
// be z itself — in one pass over the result, as the packed kernel's epilogue. Returns false,
// having done nothing, where the packed kernel does not take the product (the caller then
// runs gemm and adds b itself); the results would be the same bits either way.
template <class Dst, class Lhs, class Rhs, class T>
bool gemm_bias_relu(Dst&& z, const Lhs& lhs, const Rhs& rhs, const T* b, MatrixRef<T>* relu) {
#ifdef CHAINRULE_PACKED_GEMM
  const Index rows = z.rows(), cols = z.cols(), depth = lhs.cols();
  if (rows == 0 || cols == 0 || !packed::fits_kernel<T>(rows, cols, depth)) return false;
  static_assert(std::decay_t<Dst>::IsRowMajor, "the core's results are row-major");
  packed::Epilogue<T> epilogue;
  epilogue.bias = b;
  if (relu != nullptr) {
    epilogue.relu = true;
    if (relu->data() != z.data()) {
      epilogue.relu_out = relu->data();
      epilogue.ld_relu_out = relu->outerStride();
    }
  }
  const bool small = double(rows) * double(cols) * double(depth) < kMinParallelWork;
  packed::gemm<T>(rows, cols, depth, detail::strided_view(lhs), detail::strided_view(rhs),
                  z.data(), z.outerStride(), T(1), false, small ? 1 : get_num_threads(),
                  &epilogue);
  return true;
#else
  (void)z, (void)lhs, (void)rhs, (void)b, (void)relu;
  return false;
#endif
}

}  // namespace chainrule
