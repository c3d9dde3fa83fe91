// One build of the core behind a C interface, for benchmarks/ab_core.py: two builds (two git
// revisions of cpp/) are compiled into two shared libraries with hidden symbols and loaded into
// one process, so their timings can alternate call by call on the same machine state.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "chainrule/network.hpp"

namespace {

using chainrule::Index;

// A 784-256-128-10 ReLU/softmax net with momentum SGD (or Adam) and 30 000 random samples, made
// once.
struct Bench {
  bool adam = false;
  std::unique_ptr<chainrule::Network<float>> net;
  chainrule::Matrix<float> X;
  std::vector<std::int32_t> labels;
  std::vector<std::int64_t> order;  // a fixed shuffle, so batches are gathered as from Python

  explicit Bench(Index n) {
    using chainrule::Activation;
    net = std::make_unique<chainrule::Network<float>>(
        std::vector<Index>{784, 256, 128, 10},
        std::vector<Activation>{Activation::relu, Activation::relu, Activation::softmax},
        chainrule::Loss::cross_entropy);
    reset();
    chainrule::SplitMix64 rng(2);
    X.resize(n, 784);
    for (Index i = 0; i < X.size(); ++i) X.data()[i] = float(rng.uniform());
    labels.resize(std::size_t(n));
    order.resize(std::size_t(n));
    for (Index i = 0; i < n; ++i) {
      labels[std::size_t(i)] = std::int32_t(i % 10);
      order[std::size_t(i)] = (i * 7919) % n;  // 7919 is prime, so this is a permutation
    }
  }

  // The initial weights and a fresh optimizer. The speed of a step depends on the weights'
  // state (how many ReLUs are off, how many values are subnormal), so both builds of a
  // comparison must start from the same state and take the same steps.
  void reset() {
    chainrule::SplitMix64 rng(1);
    for (Index i = 0; i < net->n_params(); ++i)
      net->params()[i] = float(0.05 * (rng.uniform() - 0.5));
    chainrule::OptimizerConfig config;
    if (adam)
      config.kind = chainrule::OptimizerKind::adam;
    else
      config.momentum = 0.9;
    net->set_optimizer(config);
  }
};

Bench& bench() {
  static Bench b(30000);
  return b;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

extern "C" {

// Seconds to train on `samples` samples in batches of `batch`.
__attribute__((visibility("default"))) double ab_train_seconds(long batch, long samples) {
  Bench& b = bench();
  chainrule::Targets<float> y;
  y.labels = b.labels.data();
  chainrule::StepOptions options;
  options.lr = 0.001;
  const auto start = std::chrono::steady_clock::now();
  b.net->train_batches(b.X, y, b.order.data(), batch, 0, samples / batch, options);
  return seconds_since(start);
}

// Seconds for `calls` predictions of `rows` rows each.
__attribute__((visibility("default"))) double ab_predict_seconds(long rows, long calls) {
  Bench& b = bench();
  chainrule::Matrix<float> out(rows, 10);
  const auto start = std::chrono::steady_clock::now();
  for (long c = 0; c < calls; ++c) b.net->predict(b.X.topRows(rows), out);
  return seconds_since(start);
}

__attribute__((visibility("default"))) void ab_reset() { bench().reset(); }

// Adam instead of momentum SGD from the next reset on.
__attribute__((visibility("default"))) void ab_use_adam(int adam) { bench().adam = adam != 0; }

__attribute__((visibility("default"))) void ab_set_threads(int n) {
  chainrule::set_num_threads(n);
}
}
