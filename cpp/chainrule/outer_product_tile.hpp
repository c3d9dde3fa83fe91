// The micro-kernel of the small-batch kernels (small_batch_forward.hpp, weight_gradient.hpp):
// an R × C·P block of a product, summed in R·C registers as a sum of outer products. For each
// k, R values of the left operand are broadcast and multiplied into C packets of the right
// operand's row k, so both operands are read where they lie, without packing.
#pragma once

#include <Eigen/Core>

#include "types.hpp"

namespace chainrule {
namespace detail {

// v, from an empty asm that takes it in a vector register: the compiler must load v into a
// register, once, instead of folding its load into each of the R multiply-adds that use it (as
// a memory operand). Which one GCC 12 chose depended on its tuning: with -mtune=znver3 (what
// -march=native gives on Zen 3) it folded them in the 4 × 3 forward tile, 16 loads per 12
// FMAs, and the tile ran 25-30 % slower than with -mtune=generic, which held them. The asm
// takes a copy: given the array element itself, GCC kept the array in memory and stored
// every packet to the stack on every k (15-20 % slower).
template <class Packet>
EIGEN_ALWAYS_INLINE Packet in_register(Packet v) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#endif
  return v;
}

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
  // The R·C accumulators, right's C packets and one broadcast in 16 vector registers (AVX2, SSE).
  static_assert(R * C + C + 1 <= 16, "the tile must fit the vector registers");
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q)
      c[r][q] = start != nullptr ? ploadu<SimdPacket<T>>(start + r * ld_start + q * P)
                                 : pset1<SimdPacket<T>>(T(0));
  for (Index k = 0; k < depth; ++k) {
    SimdPacket<T> right_k[C];
    for (int q = 0; q < C; ++q)
      right_k[q] = in_register(ploadu<SimdPacket<T>>(right + k * ld_right + q * P));
    for (int r = 0; r < R; ++r) {
      const T value = LeftTransposed ? left[k * ld_left + r] : left[r * ld_left + k];
      const SimdPacket<T> left_rk = pset1<SimdPacket<T>>(value);
      for (int q = 0; q < C; ++q) c[r][q] = pmadd(left_rk, right_k[q], c[r][q]);
    }
  }
}

}  // namespace detail
}  // namespace chainrule
