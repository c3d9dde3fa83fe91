// One dense layer: z = a_prev·W + b, a = σ(z), and its backward pass.
#pragma once

#include "activation.hpp"
#include "gemm.hpp"
#include "small_batch_forward.hpp"
#include "weight_gradient.hpp"

namespace chainrule {

// a_prev is (B, in), W is (in, out), b is (out); writes z and a, both (B, out). a may be z
// itself (inference, where z is not needed again).
template <class T>
void dense_forward(const ConstMatrixRef<T>& a_prev, const ConstMatrixMap<T>& W,
                   const ConstRowVectorMap<T>& b, Activation act, T leaky_slope, MatrixRef<T> z,
                   MatrixRef<T> a) {
  // Where the packed kernel takes the product, it adds b (and applies relu) as it stores z,
  // saving a pass over z; the bits are the same as the unfused passes below.
  const bool relu = act == Activation::relu;
  if (gemm_bias_relu(z, a_prev, W, b.data(), relu ? &a : nullptr)) {
    if (!relu) activation_forward<T>(act, leaky_slope, z, a);
    return;
  }
#ifdef CHAINRULE_SMALL_BATCH_KERNELS
  if (small_batch_forward_fits<T>(z.rows(), z.cols())) {
    small_batch_forward<T>(a_prev, W, b.data(), z, relu ? &a : nullptr);
    if (!relu) activation_forward<T>(act, leaky_slope, z, a);
    return;
  }
#endif
  gemm(z, a_prev, W, T(1), false);
  bias_activation_forward<T>(act, leaky_slope, b, z, a);
}

// delta is (B, out), δ = ∂C/∂z per sample; a_prev is (B, in).
// dW (in, out) += scale·a_prevᵀ·δ and db (out) += scale·Σ_k δ_k, where scale is 1/n for a batch
// mean (∂z/∂W = a_prev, ∂z/∂b = 1). With accumulate = false they are overwritten instead, which
// gives the same values as zeroing first but saves a pass over the gradient memory.
// Where the small-batch kernel takes dW (x86-64-v3, a batch of at most 64), it also yields
// Σ dW² + Σ db²: then, if sum_sq is given and accumulate is false, that goes into *sum_sq and
// true is returned. Otherwise *sum_sq is left alone and false is returned.
template <class T>
bool dense_backward_params(const ConstMatrixRef<T>& a_prev, const ConstMatrixRef<T>& delta,
                           T scale, MatrixMap<T>& dW, RowVectorMap<T>& db, bool accumulate = true,
                           T* sum_sq = nullptr) {
  if (accumulate) db.noalias() += scale * delta.colwise().sum();
  else db.noalias() = scale * delta.colwise().sum();
#ifdef CHAINRULE_SMALL_BATCH_KERNELS
  // Accumulating takes the same kernel, so that gradients summed over micro-batches (or
  // processes) equal a training step's bit for bit where the summation order allows.
  if (weight_gradient_fits<T>(delta.rows(), delta.cols())) {
    const T dW_sum_sq = weight_gradient<T>(a_prev, delta, scale, dW, accumulate);
    if (sum_sq == nullptr || accumulate) return false;
    *sum_sq = dW_sum_sq + db.squaredNorm();
    return true;
  }
#endif
  (void)sum_sq;
  gemm(dW, a_prev.transpose(), delta, scale, accumulate);
  return false;
}

// d_a_prev (B, in) = δ·Wᵀ: each input's error is the sum over the neurons it feeds.
template <class T>
void dense_backward_input(const ConstMatrixRef<T>& delta, const ConstMatrixMap<T>& W,
                          MatrixRef<T> d_a_prev) {
  gemm(d_a_prev, delta, W.transpose(), T(1), false);
}

// Compiled once, for float and double, in network.cpp; the files that include this header
// call those instead of compiling them again.
#define CHAINRULE_DENSE_INSTANCES(PREFIX, T)                                                       \
  PREFIX void dense_forward<T>(const ConstMatrixRef<T>&, const ConstMatrixMap<T>&,                 \
                               const ConstRowVectorMap<T>&, Activation, T, MatrixRef<T>,           \
                               MatrixRef<T>);                                                      \
  PREFIX bool dense_backward_params<T>(const ConstMatrixRef<T>&, const ConstMatrixRef<T>&, T,      \
                                       MatrixMap<T>&, RowVectorMap<T>&, bool, T*);                 \
  PREFIX void dense_backward_input<T>(const ConstMatrixRef<T>&, const ConstMatrixMap<T>&,          \
                                      MatrixRef<T>);
CHAINRULE_DENSE_INSTANCES(extern template, float)
CHAINRULE_DENSE_INSTANCES(extern template, double)

}  // namespace chainrule
