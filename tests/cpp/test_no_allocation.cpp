// A warm training step and a warm prediction allocate nothing on the heap through Eigen.
//
// This file is its own executable, compiled together with the core's sources with
// EIGEN_RUNTIME_NO_MALLOC and assertions on: while set_is_malloc_allowed(false) is in force,
// any Eigen heap allocation (a matrix resize, a product's packing buffers) aborts the test.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "chainrule/network.hpp"
#include "chainrule/threads.hpp"

namespace {

using chainrule::Activation;
using chainrule::Index;
using chainrule::Matrix;
using chainrule::OptimizerConfig;
using chainrule::OptimizerKind;

// Re-allows Eigen's allocations when a test ends, whatever happened in it.
struct ForbidEigenMalloc {
  ForbidEigenMalloc() { Eigen::internal::set_is_malloc_allowed(false); }
  ~ForbidEigenMalloc() { Eigen::internal::set_is_malloc_allowed(true); }
};

struct Case {
  Index batch;
  int threads;
  OptimizerKind optimizer;
};

class NoAllocation : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { chainrule::set_num_threads(1); }
};

TEST_P(NoAllocation, WarmTrainingAndPredictionAllocateNothing) {
  const Case c = GetParam();
  chainrule::set_num_threads(c.threads);
  const Index n = 2 * c.batch + 7;  // two full batches and a partial one
  chainrule::Network<float> net({784, 256, 128, 10},
                                {Activation::relu, Activation::relu, Activation::softmax},
                                chainrule::Loss::cross_entropy);
  chainrule::SplitMix64 rng(1);
  for (Index i = 0; i < net.n_params(); ++i) net.params()[i] = float(0.05 * (rng.uniform() - 0.5));
  OptimizerConfig config;
  config.kind = c.optimizer;
  config.momentum = c.optimizer == OptimizerKind::sgd ? 0.9 : 0.0;
  net.set_optimizer(config);
  net.set_dropout({0.2, 0.0, 0.0});

  Matrix<float> X(n, 784), out(n, 10);
  for (Index i = 0; i < X.size(); ++i) X.data()[i] = float(rng.uniform());
  std::vector<std::int32_t> labels(n);
  for (Index i = 0; i < n; ++i) labels[i] = std::int32_t(i % 10);
  chainrule::Targets<float> y;
  y.labels = labels.data();
  std::vector<std::int64_t> order(n);
  for (Index i = 0; i < n; ++i) order[i] = n - 1 - i;
  chainrule::StepOptions options;
  options.lr = 0.01;
  options.max_grad_norm = 5.0;

  const Index batches = (n + c.batch - 1) / c.batch;
  auto epoch = [&] { return net.train_batches(X, y, order, c.batch, 0, batches, options); };
  epoch();  // warm-up: sizes the workspace and every thread's packing buffers
  net.predict(X, out);
  {
    ForbidEigenMalloc forbid;
    const chainrule::TrainStats stats = epoch();
    EXPECT_EQ(stats.n_batches, batches);
    net.predict(X, out);
    net.predict(X.topRows(1), out.topRows(1));
  }
  EXPECT_TRUE(out.allFinite());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NoAllocation,
    ::testing::Values(Case{32, 1, OptimizerKind::sgd}, Case{32, 2, OptimizerKind::sgd},
                      Case{1024, 1, OptimizerKind::sgd},
                      Case{256, 2, OptimizerKind::adam}, Case{1024, 2, OptimizerKind::sgd}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return "batch" + std::to_string(info.param.batch) + "_threads" +
             std::to_string(info.param.threads) +
             (info.param.optimizer == OptimizerKind::adam ? "_adam" : "_sgd");
    });

}  // namespace
