// The micro-kernel of the small-batch kernels (small_batch_forward.hpp, weight_gradient.hpp):
// an R × C·P block of a product, summed in R·C registers as a sum of outer products. For each
// k, R values of the left operand are broadcast and multiplied into C packets of the right
// operand's row k, so both operands are read where they lie, without packing.
#pragma once

#include <Eigen/Core>

#include "types.hpp"

namespace chainrule {
namespace detail {

// c[r][q] = start(r, q) + Σ_k left(r, k)·right[k·ld_right + q·P .. + P), summed over k in
// order, where left(r, k) = left[r·ld_left + k] (a_prev's rows, in the forward product) or, if
// LeftTransposed, left[k·ld_left + r] (a_prev's columns, in the weight gradient a_prevᵀ·δ), and
// start(r, q) is 0, or the packet at start[r·ld_start + q·P] if start is given: a sum carried
// over from an earlier slice of the depth, which continues it bit for bit.
template <int R, int C, bool LeftTransposed, class T>
EIGEN_ALWAYS_INLINE void outer_product_tile(const T* left, Index ld_left, const T* right,
                                            Index ld_right, Index depth,
                                            SimdPacket<T> (&c)[R][C], const T* start = nullptr,
                                            Index ld_start = 0) {
  using namespace Eigen::internal;
  constexpr int P = kSimdWidth<T>;
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q)
      c[r][q] = start != nullptr ? ploadu<SimdPacket<T>>(start + r * ld_start + q * P)
                                 : pset1<SimdPacket<T>>(T(0));
  for (Index k = 0; k < depth; ++k) {
    SimdPacket<T> right_k[C];
    for (int q = 0; q < C; ++q) right_k[q] = ploadu<SimdPacket<T>>(right + k * ld_right + q * P);
    for (int r = 0; r < R; ++r) {
      const T value = LeftTransposed ? left[k * ld_left + r] : left[r * ld_left + k];
      const SimdPacket<T> left_rk = pset1<SimdPacket<T>>(value);
      for (int q = 0; q < C; ++q) c[r][q] = pmadd(left_rk, right_k[q], c[r][q]);
    }
  }
}

}  // namespace detail
}  // namespace chainrule
