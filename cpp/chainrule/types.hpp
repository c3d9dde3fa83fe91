// Eigen aliases shared by the core. Matrices are row-major with one sample per row, so a
// C-contiguous numpy array maps onto them without a copy.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace chainrule {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

template <class T>
using MatrixRef = Eigen::Ref<Matrix<T>>;
template <class T>
using ConstMatrixRef = Eigen::Ref<const Matrix<T>>;

template <class T>
using MatrixMap = Eigen::Map<Matrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>>;
template <class T>
using RowVectorMap = Eigen::Map<RowVector<T>>;
template <class T>
using ConstRowVectorMap = Eigen::Map<const RowVector<T>>;

// The widest SIMD register of T that the module is compiled for, as Eigen's packet type (the
// core's own small kernels are written with Eigen's packet functions, so every ISA level
// compiles them).
template <class T>
using SimdPacket = typename Eigen::internal::packet_traits<T>::type;
template <class T>
constexpr int kSimdWidth = Eigen::internal::packet_traits<T>::size;  // values per SimdPacket

// The small-batch kernels (small_batch_forward.hpp, weight_gradient.hpp) replace the packed
// products only where they were measured faster: with AVX2 and FMA (x86-64-v3). With SSE only
// (baseline, v2) they ran 2-4 % behind Eigen at batch 32-64, and the AVX-512 build has its own
// kernel. They compile, and are tested, at every level.
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define CHAINRULE_SMALL_BATCH_KERNELS 1
#endif

// A pointer through which no other pointer in scope reaches the same values: it lets the
// compiler vectorize a loop over several buffers without checking them for overlap first.
#define CHAINRULE_RESTRICT __restrict

}  // namespace chainrule
