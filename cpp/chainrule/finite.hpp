// Finding the first NaN or infinity in an array, in one vectorised pass.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "threads.hpp"
#include "types.hpp"

namespace chainrule {

namespace detail {

constexpr Index kFiniteBlock = 4096;  // values: 16 KB of floats, still in L1 for the search

// The first NaN or infinity in block b of data[0, n), or -1.
template <class T>
Index first_nonfinite_in_block(const T* data, Index n, Index b) {
  const Index start = b * kFiniteBlock, length = std::min(kFiniteBlock, n - start);
  const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> block(data + start, length);
  if ((block * T(0)).sum() == T(0)) return -1;
  for (Index i = start; i < start + length; ++i)
    if (!std::isfinite(data[i])) return i;
  return -1;
}

}  // namespace detail

// The index of the first NaN or infinity among data[0, n), or -1 if every value is finite.
// v·0 is 0 for finite v and NaN for NaN or ±inf, so a block whose v·0 sum to 0 is all finite;
// unlike allFinite() the sum vectorises, and unlike max − min it cannot overflow and needs one
// pass. Only a block that fails is searched value by value. Large arrays (a training set) are
// shared out among the core's threads in contiguous runs of blocks; each thread stops at its
// first find, and the smallest index wins.
template <class T>
Index first_nonfinite(const T* data, Index n) {
  const Index blocks = (n + detail::kFiniteBlock - 1) / detail::kFiniteBlock;
  constexpr Index kMinParallel = Index(1) << 20;  // values; below, one pass takes < 0.2 ms
  const int threads = n >= kMinParallel ? get_num_threads() : 1;
  if (threads == 1) {  // not even an inactive parallel region: predict checks row by row
    for (Index b = 0; b < blocks; ++b) {
      const Index i = detail::first_nonfinite_in_block(data, n, b);
      if (i >= 0) return i;
    }
    return -1;
  }
  Index found = n;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : found)
#endif
  for (Index b = 0; b < blocks; ++b) {
    if (found < n) continue;  // this thread's run already has one, at a smaller index
    const Index i = detail::first_nonfinite_in_block(data, n, b);
    if (i >= 0) found = i;
  }
  return found < n ? found : -1;
}

}  // namespace chainrule
