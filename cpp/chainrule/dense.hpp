// One dense layer: z = a_prev·W + b, a = σ(z), and its backward pass.
#pragma once

#include "activation.hpp"
#include "gemm.hpp"

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
  gemm(z, a_prev, W, T(1), false);
  bias_activation_forward<T>(act, leaky_slope, b, z, a);
}

// delta is (B, out), δ = ∂C/∂z per sample; a_prev is (B, in).
// dW (in, out) += scale·a_prevᵀ·δ and db (out) += scale·Σ_k δ_k, where scale is 1/n for a batch
// mean (∂z/∂W = a_prev, ∂z/∂b = 1). With accumulate = false they are overwritten instead, which
// gives the same bits as zeroing first but saves a pass over the gradient memory.
template <class T>
void dense_backward_params(const ConstMatrixRef<T>& a_prev, const ConstMatrixRef<T>& delta,
                           T scale, MatrixMap<T>& dW, RowVectorMap<T>& db, bool accumulate = true) {
  gemm(dW, a_prev.transpose(), delta, scale, accumulate);
  if (accumulate) db.noalias() += scale * delta.colwise().sum();
  else db.noalias() = scale * delta.colwise().sum();
}

// d_a_prev (B, in) = δ·Wᵀ: each input's error is the sum over the neurons it feeds.
template <class T>
void dense_backward_input(const ConstMatrixRef<T>& delta, const ConstMatrixMap<T>& W,
                          MatrixRef<T> d_a_prev) {
  gemm(d_a_prev, delta, W.transpose(), T(1), false);
}

}  // namespace chainrule
