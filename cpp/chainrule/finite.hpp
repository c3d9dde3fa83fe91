// Finding the first NaN or infinity in an array, in one vectorised pass.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "types.hpp"

namespace chainrule {

// The index of the first NaN or infinity among data[0, n), or -1 if every value is finite.
// v·0 is 0 for finite v and NaN for NaN or ±inf, so a block whose v·0 sum to 0 is all finite;
// unlike allFinite() the sum vectorises, and unlike max − min it cannot overflow and needs one
// pass. Only a block that fails is searched value by value.
template <class T>
Index first_nonfinite(const T* data, Index n) {
  constexpr Index kBlock = 4096;  // values: 16 KB of floats, still in L1 for the search
  for (Index start = 0; start < n; start += kBlock) {
    const Index length = std::min(kBlock, n - start);
    const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> block(data + start, length);
    if ((block * T(0)).sum() == T(0)) continue;
    for (Index i = start; i < start + length; ++i)
      if (!std::isfinite(data[i])) return i;
  }
  return -1;
}

}  // namespace chainrule
