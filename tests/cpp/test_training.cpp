// Training: train_step and train_batches (order, partial batches, optimizer, L2, clipping) and
// what happens when a batch produces a non-finite loss or gradient.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::Activation;
using chainrule::Index;
using chainrule::Loss;
using chainrule::Matrix;
using chainrule::StepOptions;
using chainrule::Targets;
using chainrule::TrainStats;
using namespace chainrule_test;

// 8 points split by the line x0 + x1 = 0.
struct Separable {
  Matrix<double> x{{1.0, 1.0}, {2.0, 0.5}, {0.5, 2.0}, {1.5, -0.5},
                   {-1.0, -1.0}, {-2.0, -0.5}, {-0.5, -2.0}, {-1.5, 0.5}};
  std::vector<std::int32_t> labels{1, 1, 1, 1, 0, 0, 0, 0};
};

TEST(NetworkTraining, TrainBatchesWithAnOrderReducesTheLoss) {
  const Separable data;
  const Targets<double> y = label_targets(data.labels);
  Net net({2, 3, 2}, {Activation::tanh, Activation::softmax}, Loss::cross_entropy);
  randomize(net, 21, 0.5);
  const double initial = mean_loss(net, data.x, y);
  const std::vector<std::int64_t> perm{3, 6, 0, 5, 2, 7, 1, 4};
  StepOptions options;
  options.lr = 0.5;
  for (int epoch = 0; epoch < 100; ++epoch) {
    std::vector<std::int64_t> order(8);
    for (int i = 0; i < 8; ++i) order[i] = perm[(i + epoch) % 8];
    const TrainStats stats = net.train_batches(data.x, y, order, 4, 0, 2, options);
    ASSERT_EQ(stats.n_batches, 2);
    ASSERT_EQ(stats.n_samples, 8);
    ASSERT_FALSE(stats.nonfinite_loss);
    ASSERT_EQ(stats.nonfinite_layer, -1);
  }
  const double final_loss = mean_loss(net, data.x, y);
  EXPECT_LT(final_loss, 0.1 * initial) << "initial " << initial;
  Matrix<double> out(8, 2);
  net.predict(data.x, out);
  for (Index k = 0; k < 8; ++k) {
    Index predicted;
    out.row(k).maxCoeff(&predicted);
    EXPECT_EQ(predicted, data.labels[k]) << "sample " << k;
  }
}

// train_batches must do exactly what train_step does on the rows it gathers.
TEST(NetworkTraining, TrainBatchesEqualsTrainStepOnTheGatheredRows) {
  const Index n = 7, batch_size = 3;
  const Matrix<double> x = random_matrix(n, 3, 30);
  const Matrix<double> y_values = random_matrix(n, 2, 31);
  const std::vector<std::int32_t> labels{0, 1, 1, 0, 1, 0, 0};
  const std::vector<std::int64_t> order{4, 0, 6, 2, 5, 1, 3};
  StepOptions options;
  options.lr = 0.1;
  chainrule::OptimizerConfig momentum;
  momentum.momentum = 0.9;  // so that the order of the steps matters through the optimizer state

  for (const bool use_labels : {true, false}) {
    for (const bool shuffled : {true, false}) {
      for (const Index first_batch : {Index(0), Index(1)}) {
        SCOPED_TRACE(std::string(use_labels ? "labels" : "values") +
                     (shuffled ? ", shuffled" : ", in order") +
                     ", first batch " + std::to_string(first_batch));
        const Loss loss = use_labels ? Loss::cross_entropy : Loss::mse;
        const Activation out = use_labels ? Activation::softmax : Activation::tanh;
        Net a({3, 4, 2}, {Activation::sigmoid, out}, loss);
        Net b({3, 4, 2}, {Activation::sigmoid, out}, loss);
        randomize(a, 32);
        randomize(b, 32);
        a.set_optimizer(momentum);
        b.set_optimizer(momentum);
        const Targets<double> y = use_labels ? label_targets(labels) : value_targets(y_values);
        const std::vector<std::int64_t> no_order;
        // Asks for 5 batches: only the ones inside the data run (3 in all, the last has 1 row).
        const TrainStats got =
            a.train_batches(x, y, shuffled ? order : no_order, batch_size, first_batch, 5, options);

        TrainStats want;
        for (Index k = first_batch; k * batch_size < n; ++k) {
          const Index B = std::min(batch_size, n - k * batch_size);
          Matrix<double> xb(B, 3), yb(B, 2);
          std::vector<std::int32_t> lb(B);
          for (Index i = 0; i < B; ++i) {
            const Index src = shuffled ? order[k * batch_size + i] : k * batch_size + i;
            xb.row(i) = x.row(src);
            yb.row(i) = y_values.row(src);
            lb[i] = labels[src];
          }
          b.train_step(xb, use_labels ? label_targets(lb) : value_targets(yb), options, want);
        }
        EXPECT_EQ(got.n_batches, 3 - first_batch);
        EXPECT_EQ(got.n_samples, want.n_samples);
        EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-14);
        EXPECT_EQ(got.n_correct, want.n_correct);
        EXPECT_EIGEN_NEAR(params_of(a), params_of(b), 1e-15);
      }
    }
  }
}

TEST(NetworkTraining, TrainStepIsOneSgdStepOnTheBatchMeanGradient) {
  Net net({2, 3, 1}, {Activation::tanh, Activation::sigmoid}, Loss::binary_cross_entropy);
  randomize(net, 40);
  const Matrix<double> x = random_matrix(4, 2, 41);
  const Matrix<double> y{{1.0}, {0.0}, {1.0}, {1.0}};
  const Vec before = params_of(net);
  const Vec g = batch_gradient(net, x, value_targets(y));
  const double loss = mean_loss(net, x, value_targets(y));
  StepOptions options;
  options.lr = 0.3;
  TrainStats stats;
  net.train_step(x, value_targets(y), options, stats);
  EXPECT_EIGEN_NEAR(params_of(net), before - 0.3 * g, 1e-15);
  EXPECT_EIGEN_NEAR(grads_of(net), g, 1e-15);
  EXPECT_NEAR(stats.loss_sum, 4 * loss, 1e-14);
  EXPECT_NEAR(stats.grad_norm, g.norm(), 1e-15);
  EXPECT_EQ(stats.n_samples, 4);
  EXPECT_EQ(stats.n_batches, 1);
}

// Gradient accumulation over micro-batches, then one update: the same step as the full batch.
TEST(NetworkTraining, MicroBatchesThenApplyGradientsEqualsTheFullBatchStep) {
  const Matrix<double> x = random_matrix(6, 3, 42);
  const Matrix<double> y = random_matrix(6, 2, 43);
  StepOptions options;
  options.lr = 0.2;
  options.l2 = 0.01;
  Net full({3, 4, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  Net micro({3, 4, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(full, 44);
  randomize(micro, 44);

  TrainStats full_stats;
  full.train_step(x, value_targets(y), options, full_stats);

  chainrule::Workspace<double> ws;
  micro.zero_grad();
  const Matrix<double> x1 = x.topRows(3), x2 = x.bottomRows(3);
  const Matrix<double> y1 = y.topRows(3), y2 = y.bottomRows(3);
  micro.accumulate_gradients(x1, value_targets(y1), ws, 1.0 / 6, true);
  micro.accumulate_gradients(x2, value_targets(y2), ws, 1.0 / 6, true);
  TrainStats micro_stats;
  double norm = 0;
  ASSERT_TRUE(micro.apply_gradients(options, micro_stats, &norm));
  EXPECT_NEAR(norm, full_stats.grad_norm, 1e-14);
  EXPECT_EIGEN_NEAR(params_of(micro), params_of(full), 1e-15);

  // A loss already flagged as non-finite blocks the update.
  const Vec before = params_of(micro);
  TrainStats flagged;
  flagged.nonfinite_loss = true;
  EXPECT_FALSE(micro.apply_gradients(options, flagged));
  EXPECT_EIGEN_NEAR(params_of(micro), before, 0.0);
}

TEST(NetworkTraining, L2PenalisesWeightsButNotBiases) {
  Net net({2, 3, 1}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 50);
  const Matrix<double> x = random_matrix(3, 2, 51);
  const Matrix<double> y = random_matrix(3, 1, 52);
  const Vec before = params_of(net);
  Vec expected_grad = batch_gradient(net, x, value_targets(y));
  for (std::size_t l = 0; l < net.n_layers(); ++l)
    for (Index i = net.w_offset(l); i < net.b_offset(l); ++i) expected_grad[i] += 0.1 * before[i];
  StepOptions options;
  options.lr = 0.2;
  options.l2 = 0.1;
  TrainStats stats;
  net.train_step(x, value_targets(y), options, stats);
  EXPECT_EIGEN_NEAR(grads_of(net), expected_grad, 1e-15);
  EXPECT_EIGEN_NEAR(params_of(net), before - 0.2 * expected_grad, 1e-15);
}

TEST(NetworkTraining, ClipsTheGlobalGradientNorm) {
  Net net({2, 3, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 60);
  const Matrix<double> x = random_matrix(3, 2, 61, 3.0);
  const Matrix<double> y = random_matrix(3, 2, 62, 5.0);
  const Vec before = params_of(net);
  const Vec g = batch_gradient(net, x, value_targets(y));
  ASSERT_GT(g.norm(), 0.5);
  StepOptions options;
  options.lr = 0.1;
  options.max_grad_norm = 0.5;
  TrainStats stats;
  net.train_step(x, value_targets(y), options, stats);
  const Vec clipped = g * (0.5 / (g.norm() + 1e-6));
  EXPECT_NEAR(stats.grad_norm, g.norm(), 1e-14);  // reported before clipping
  EXPECT_NEAR(grads_of(net).norm(), 0.5, 1e-5);
  EXPECT_EIGEN_NEAR(params_of(net), before - 0.1 * clipped, 1e-15);

  // Below the threshold nothing is scaled.
  Net small({2, 3, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(small, 60);
  options.max_grad_norm = 10 * g.norm();
  TrainStats small_stats;
  small.train_step(x, value_targets(y), options, small_stats);
  EXPECT_EIGEN_NEAR(params_of(small), before - 0.1 * g, 1e-15);
}

TEST(NetworkTraining, NaNInputStopsTrainingAndLeavesParametersUnchanged) {
  const Separable data;
  const Targets<double> y = label_targets(data.labels);
  StepOptions options;
  options.lr = 0.5;
  const auto make_net = [] {
    Net net({2, 3, 2}, {Activation::tanh, Activation::softmax}, Loss::cross_entropy);
    randomize(net, 70);
    return net;
  };

  // A NaN in the first batch: nothing is applied.
  Matrix<double> x = data.x;
  x(1, 0) = std::numeric_limits<double>::quiet_NaN();
  Net net = make_net();
  const Vec before = params_of(net);
  TrainStats stats = net.train_batches(x, y, {}, 4, 0, 2, options);
  EXPECT_TRUE(stats.nonfinite_loss);
  EXPECT_EQ(stats.nonfinite_layer, 0);
  EXPECT_EQ(stats.n_batches, 0);
  EXPECT_EQ(stats.n_samples, 0);
  EXPECT_EIGEN_NEAR(params_of(net), before, 0.0);

  // A NaN in the second batch: the first batch's update stays, and training stops there.
  x = data.x;
  x(6, 1) = std::numeric_limits<double>::quiet_NaN();
  Net stopped = make_net();
  stats = stopped.train_batches(x, y, {}, 4, 0, 2, options);
  EXPECT_TRUE(stats.nonfinite_loss);
  EXPECT_EQ(stats.n_batches, 1);
  EXPECT_EQ(stats.n_samples, 4);
  Net reference = make_net();
  reference.train_batches(data.x, y, {}, 4, 0, 1, options);
  EXPECT_EIGEN_NEAR(params_of(stopped), params_of(reference), 0.0);
}

TEST(NetworkTraining, InfiniteInputWithFiniteLossIsCaughtInTheGradient) {
  // tanh(±∞) = ±1 keeps the loss finite, but ∂C/∂W0 gets ∞·0 = NaN.
  const Separable data;
  const Targets<double> y = label_targets(data.labels);
  Net net({2, 3, 2}, {Activation::tanh, Activation::softmax}, Loss::cross_entropy);
  randomize(net, 80);
  Matrix<double> x = data.x;
  x(2, 0) = std::numeric_limits<double>::infinity();
  ASSERT_TRUE(std::isfinite(mean_loss(net, x, y)));
  const Vec before = params_of(net);
  StepOptions options;
  TrainStats stats;
  net.train_step(x, y, options, stats);
  EXPECT_FALSE(stats.nonfinite_loss);
  EXPECT_EQ(stats.nonfinite_layer, 0);
  EXPECT_EQ(stats.n_batches, 0);
  EXPECT_EIGEN_NEAR(params_of(net), before, 0.0);
}

// The gradient norm's sum of squares, against a plain sum in long double: every length around
// the lane count (the tail), and non-finite values in the lanes and in the tail.
template <class T>
void check_sum_of_squares() {
  std::vector<T> x(5000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(std::sin(0.37 * double(i)) * 3.0);
  for (Index n : {0, 1, 7, 31, 32, 33, 63, 64, 65, 100, 4999, 5000}) {
    long double reference = 0;
    for (Index i = 0; i < n; ++i) reference += (long double)x[i] * x[i];
    const T got = chainrule::sum_of_squares(x.data(), n);
    EXPECT_NEAR(double(got), double(reference), 1e-5 * double(reference) + 1e-30) << "n = " << n;
  }
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for (Index at : {0, 17, 4990}) {  // in the first pass, a later lane, the tail
    std::vector<T> y(x.begin(), x.begin() + 4999);
    y[std::size_t(at)] = -inf;
    EXPECT_EQ(chainrule::sum_of_squares(y.data(), Index(y.size())), inf) << "at " << at;
    y[std::size_t(at)] = nan;
    EXPECT_TRUE(std::isnan(chainrule::sum_of_squares(y.data(), Index(y.size())))) << "at " << at;
  }
}

TEST(GradientNorm, SumOfSquaresMatchesAPlainSumAndPropagatesNonFinite) {
  check_sum_of_squares<float>();
  check_sum_of_squares<double>();
}

}  // namespace
