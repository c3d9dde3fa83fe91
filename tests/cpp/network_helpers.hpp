// Small helpers shared by the network tests: seeded parameters, target views, loss and gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "chainrule/network.hpp"

namespace chainrule_test {

using Net = chainrule::Network<double>;
using Vec = Eigen::VectorXd;

// Parameters uniform in [−scale, scale) from a fixed seed (SplitMix64 is bit-exact everywhere).
template <class T>
void randomize(chainrule::Network<T>& net, std::uint64_t seed, double scale = 1.0) {
  chainrule::SplitMix64 rng(seed);
  for (chainrule::Index i = 0; i < net.n_params(); ++i)
    net.params()[i] = T(scale * (2 * rng.uniform() - 1));
}

inline chainrule::Matrix<double> random_matrix(chainrule::Index rows, chainrule::Index cols,
                                               std::uint64_t seed, double scale = 1.0) {
  chainrule::SplitMix64 rng(seed);
  chainrule::Matrix<double> m(rows, cols);
  for (chainrule::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * (2 * rng.uniform() - 1);
  return m;
}

template <class T>
chainrule::Targets<T> value_targets(const chainrule::Matrix<T>& y) {
  chainrule::Targets<T> t;
  t.values = y.data();
  t.stride = y.cols();
  return t;
}

inline chainrule::Targets<double> label_targets(const std::vector<std::int32_t>& labels) {
  chainrule::Targets<double> t;
  t.labels = labels.data();
  return t;
}

template <class T>
Eigen::Matrix<T, Eigen::Dynamic, 1> params_of(chainrule::Network<T>& net) {
  return Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(net.params(), net.n_params());
}

template <class T>
Eigen::Matrix<T, Eigen::Dynamic, 1> grads_of(chainrule::Network<T>& net) {
  return Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(net.grads(), net.n_params());
}

// Mean cost (1/B) Σ_k C_k of a batch, without dropout and without touching the gradients.
inline double mean_loss(Net& net, const chainrule::Matrix<double>& x,
                        const chainrule::Targets<double>& y) {
  chainrule::Workspace<double> ws;
  net.forward(x, ws, false);
  return double(net.output_delta(y, ws, x.rows()).loss_sum) / double(x.rows());
}

// ∂/∂θ of the mean cost, as backpropagation computes it.
inline Vec batch_gradient(Net& net, const chainrule::Matrix<double>& x,
                          const chainrule::Targets<double>& y) {
  chainrule::Workspace<double> ws;
  net.zero_grad();
  net.accumulate_gradients(x, y, ws, 1.0 / double(x.rows()), false);
  return grads_of(net);
}

}  // namespace chainrule_test
