// Activations σ and their derivatives, applied row by row.
// Forward fuses the bias add into the same pass: z += b, then a = σ(z).
// Backward turns ∂C/∂a into δ = ∂C/∂z in place: δ = ∂C/∂a ⊙ σ'(z).
#pragma once

#include <stdexcept>
#include <string>

#include "types.hpp"

namespace chainrule {

enum class Activation { identity, sigmoid, tanh, relu, leaky_relu, softmax };

inline const char* activation_names() {
  return "identity, sigmoid, tanh, relu, leaky_relu, softmax";
}

inline Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::identity;
  if (name == "sigmoid" || name == "logistic") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "softmax") return Activation::softmax;
  throw std::invalid_argument("unknown activation '" + name + "'; valid names: " +
                              activation_names());
}

inline const char* activation_name(Activation act) {
  switch (act) {
    case Activation::identity: return "identity";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::softmax: return "softmax";
  }
  return "?";
}

// Numerically stable softmax of one row: shift by the max so exp never overflows.
template <class Row, class OutRow>
void softmax_row(const Row& z, OutRow&& a) {
  a = (z.array() - z.maxCoeff()).exp();
  a /= a.sum();
}

// One row: a = σ(z); a may be z itself.
template <class T, class Row, class OutRow>
void activation_row(Activation act, T leaky_slope, const Row& zr, OutRow&& ar) {
  switch (act) {
    case Activation::identity: ar = zr; break;
    case Activation::sigmoid: ar = T(1) / (T(1) + (-zr.array()).exp()); break;
    case Activation::tanh: ar = zr.array().tanh(); break;
    case Activation::relu: ar = zr.cwiseMax(T(0)); break;
    case Activation::leaky_relu:
      ar = (zr.array() > T(0)).select(zr.array(), leaky_slope * zr.array());
      break;
    case Activation::softmax: softmax_row(zr, ar); break;
  }
}

// z is (B, out) holding a_prev·W on entry; b is (out). On exit z = a_prev·W + b and a = σ(z).
// Row by row, so that σ reads each row while it is still in L1; a may be z itself.
template <class T>
void bias_activation_forward(Activation act, T leaky_slope, const ConstRowVectorMap<T>& b,
                             MatrixRef<T> z, MatrixRef<T> a) {
  for (Index r = 0; r < z.rows(); ++r) {
    z.row(r) += b;
    activation_row(act, leaky_slope, z.row(r), a.row(r));
  }
}

// a = σ(z) for a z that already holds its bias; a may be z itself.
template <class T>
void activation_forward(Activation act, T leaky_slope, MatrixRef<T> z, MatrixRef<T> a) {
  for (Index r = 0; r < z.rows(); ++r) activation_row(act, leaky_slope, z.row(r), a.row(r));
}

// delta holds ∂C/∂a on entry and δ = ∂C/∂z on exit; z and a are this layer's forward values.
// Derivatives use a where that is cheaper: σ' = a(1 − a), tanh' = 1 − a².
template <class T>
void activation_backward(Activation act, T leaky_slope, const ConstMatrixRef<T>& z,
                         const ConstMatrixRef<T>& a, MatrixRef<T> delta) {
  switch (act) {
    case Activation::identity: break;
    case Activation::sigmoid:
      delta.array() *= a.array() * (T(1) - a.array());
      break;
    case Activation::tanh: delta.array() *= T(1) - a.array().square(); break;
    case Activation::relu:
      delta.array() = (z.array() > T(0)).select(delta.array(), T(0));
      break;
    case Activation::leaky_relu:
      delta.array() = (z.array() > T(0)).select(delta.array(), leaky_slope * delta.array());
      break;
    case Activation::softmax:
      // Jacobian-vector product of softmax: δ_i = a_i (g_i − Σ_j g_j a_j).
      for (Index r = 0; r < delta.rows(); ++r) {
        const T g_dot_a = delta.row(r).dot(a.row(r));
        delta.row(r).array() = a.row(r).array() * (delta.row(r).array() - g_dot_a);
      }
      break;
  }
}

// Compiled once, for float and double, in network.cpp; the files that include this header
// call those instead of compiling them again.
#define CHAINRULE_ACTIVATION_INSTANCES(PREFIX, T)                                                  \
  PREFIX void bias_activation_forward<T>(Activation, T, const ConstRowVectorMap<T>&, MatrixRef<T>, \
                                         MatrixRef<T>);                                            \
  PREFIX void activation_forward<T>(Activation, T, MatrixRef<T>, MatrixRef<T>);                    \
  PREFIX void activation_backward<T>(Activation, T, const ConstMatrixRef<T>&,                      \
                                     const ConstMatrixRef<T>&, MatrixRef<T>);
CHAINRULE_ACTIVATION_INSTANCES(extern template, float)
CHAINRULE_ACTIVATION_INSTANCES(extern template, double)

}  // namespace chainrule
