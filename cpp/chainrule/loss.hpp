// Costs C_k per sample and the output layer's δ = ∂C_k/∂z, computed in one pass.
//   mse:                  C_k = Σ_j (a_j − y_j)²           ∂C/∂a = 2(a − y), then δ = ∂C/∂a ⊙ σ'(z)
//   cross_entropy:        softmax output, C_k = −Σ_j y_j log a_j    δ = a·Σy − y  (= a − y for one-hot)
//   binary_cross_entropy: sigmoid output, C_k = −Σ_j [y log a + (1−y) log(1−a)]   δ = a − y
// The cross-entropies are computed from z (log-sum-exp and softplus), so they never take log(0).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "activation.hpp"

namespace chainrule {

enum class Loss { mse, cross_entropy, binary_cross_entropy };

inline const char* loss_names() { return "mse, cross_entropy, binary_cross_entropy"; }

inline Loss parse_loss(const std::string& name) {
  if (name == "mse" || name == "squared_error") return Loss::mse;
  if (name == "cross_entropy" || name == "categorical_cross_entropy") return Loss::cross_entropy;
  if (name == "binary_cross_entropy") return Loss::binary_cross_entropy;
  throw std::invalid_argument("unknown loss '" + name + "'; valid names: " + loss_names());
}

inline const char* loss_name(Loss loss) {
  switch (loss) {
    case Loss::mse: return "mse";
    case Loss::cross_entropy: return "cross_entropy";
    case Loss::binary_cross_entropy: return "binary_cross_entropy";
  }
  return "?";
}

// The output activation a loss is fused with; identity-like freedom only for mse.
inline void check_output_activation(Loss loss, Activation out) {
  if (loss == Loss::cross_entropy && out != Activation::softmax)
    throw std::invalid_argument("loss 'cross_entropy' needs a softmax output layer, got '" +
                                std::string(activation_name(out)) + "'");
  if (loss == Loss::binary_cross_entropy && out != Activation::sigmoid)
    throw std::invalid_argument("loss 'binary_cross_entropy' needs a sigmoid output layer, got '" +
                                std::string(activation_name(out)) + "'");
}

// Targets of one batch: either integer class labels (cross_entropy only) or a (B, out) matrix.
template <class T>
struct Targets {
  const std::int32_t* labels = nullptr;  // (B), or null
  const T* values = nullptr;             // (B, out) row-major with row stride `stride`, or null
  Index stride = 0;

  bool has_labels() const { return labels != nullptr; }
  ConstRowVectorMap<T> row(Index r, Index cols) const {
    return ConstRowVectorMap<T>(values + r * stride, cols);
  }
};

// What one batch's loss pass reports.
template <class T>
struct LossResult {
  T loss_sum = 0;        // Σ_k C_k over the batch
  Index n_correct = 0;   // classification hits (argmax, or all thresholds for binary)
};

template <class Row>
Index argmax_of(const Row& row) {
  Index best = 0;
  row.maxCoeff(&best);
  return best;
}

// z and a are the output layer's (B, out) values; writes δ (B, out).
template <class T>
LossResult<T> loss_forward_backward(Loss loss, Activation out_act, T leaky_slope,
                                    const ConstMatrixRef<T>& z, const ConstMatrixRef<T>& a,
                                    const Targets<T>& y, MatrixRef<T> delta) {
  const Index B = z.rows(), n_out = z.cols();
  LossResult<T> result;
  switch (loss) {
    case Loss::mse:
      for (Index r = 0; r < B; ++r) {
        auto diff = delta.row(r);
        diff = a.row(r) - y.row(r, n_out);
        result.loss_sum += diff.squaredNorm();
        diff *= T(2);
      }
      activation_backward<T>(out_act, leaky_slope, z, a, delta);
      break;
    case Loss::cross_entropy:
      for (Index r = 0; r < B; ++r) {
        const T z_max = z.row(r).maxCoeff();
        const T log_sum_exp = z_max + std::log((z.row(r).array() - z_max).exp().sum());
        const Index predicted = argmax_of(z.row(r));
        if (y.has_labels()) {
          const Index label = y.labels[r];
          result.loss_sum += log_sum_exp - z(r, label);
          delta.row(r) = a.row(r);
          delta(r, label) -= T(1);
          result.n_correct += (predicted == label);
        } else {
          const auto yr = y.row(r, n_out);
          const T y_sum = yr.sum();
          result.loss_sum += log_sum_exp * y_sum - yr.dot(z.row(r));
          delta.row(r) = a.row(r) * y_sum - yr;
          result.n_correct += (predicted == argmax_of(yr));
        }
      }
      break;
    case Loss::binary_cross_entropy:
      for (Index r = 0; r < B; ++r) {
        const auto yr = y.row(r, n_out);
        const auto zr = z.row(r).array();
        // −[y log σ(z) + (1−y) log(1−σ(z))] = max(z, 0) − z·y + log(1 + e^−|z|)
        result.loss_sum +=
            (zr.max(T(0)) - zr * yr.array() + (-zr.abs()).exp().log1p()).sum();
        delta.row(r) = a.row(r) - yr;
        result.n_correct += ((zr > T(0)) == (yr.array() > T(0.5))).all();
      }
      break;
  }
  return result;
}

// Compiled once, for float and double, in network.cpp; the files that include this header
// call those instead of compiling them again.
#define CHAINRULE_LOSS_INSTANCES(PREFIX, T)                                                        \
  PREFIX LossResult<T> loss_forward_backward<T>(Loss, Activation, T, const ConstMatrixRef<T>&,     \
                                                const ConstMatrixRef<T>&, const Targets<T>&,       \
                                                MatrixRef<T>);
CHAINRULE_LOSS_INSTANCES(extern template, float)
CHAINRULE_LOSS_INSTANCES(extern template, double)

}  // namespace chainrule
