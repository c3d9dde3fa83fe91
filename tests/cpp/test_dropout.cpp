// Inverted dropout: masks drawn from the network's seeded generator, only while training.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::Activation;
using chainrule::Index;
using chainrule::Loss;
using chainrule::Matrix;
using chainrule::Targets;
using chainrule::Workspace;
using namespace chainrule_test;

TEST(Dropout, RatesAreValidated) {
  Net net({3, 4, 4, 2}, {Activation::relu, Activation::relu, Activation::identity}, Loss::mse);
  EXPECT_THROW(net.set_dropout({0.5, 0.0}), std::invalid_argument);         // one per layer
  EXPECT_THROW(net.set_dropout({1.0, 0.0, 0.0}), std::invalid_argument);    // p < 1
  EXPECT_THROW(net.set_dropout({-0.1, 0.0, 0.0}), std::invalid_argument);   // p >= 0
  EXPECT_THROW(net.set_dropout({0.5, 0.5, 0.1}), std::invalid_argument);    // output keeps 0
  EXPECT_NO_THROW(net.set_dropout({0.5, 0.2, 0.0}));
  EXPECT_EQ(net.dropout(), (std::vector<double>{0.5, 0.2, 0.0}));
}

TEST(Dropout, TrainingDiffersFromEvalAndEvalIsDeterministic) {
  Net net({4, 20, 3}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 1);
  net.set_dropout({0.5, 0.0});
  const Matrix<double> x = random_matrix(5, 4, 2);
  Workspace<double> ws;

  const std::uint64_t state = net.rng().state();
  net.forward(x, ws, false);
  const Matrix<double> eval1 = ws.a[1].topRows(5);
  EXPECT_FALSE(ws.dropout_active[0]);
  net.forward(x, ws, false);
  EXPECT_EIGEN_NEAR(ws.a[1].topRows(5), eval1, 0.0);
  EXPECT_EQ(net.rng().state(), state);  // evaluation draws no random numbers

  // Without dropout the network is a plain function: compare with a dropout-free copy.
  Net plain({4, 20, 3}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(plain, 1);
  Workspace<double> plain_ws;
  plain.forward(x, plain_ws, true);
  EXPECT_EIGEN_NEAR(plain_ws.a[1], eval1, 0.0);

  net.forward(x, ws, true);
  EXPECT_TRUE(ws.dropout_active[0]);
  EXPECT_NE(net.rng().state(), state);
  const Matrix<double> train = ws.a[1].topRows(5);
  EXPECT_GT((train - eval1).cwiseAbs().maxCoeff(), 1e-3);
  EXPECT_FALSE(chainrule_test::EigenNear("train", "eval", "tol", train, eval1, 1e-3));
}

TEST(Dropout, KeptUnitsAreScaledSoTheMeanIsPreserved) {
  const double p = 0.3;
  Net net({10, 200, 1}, {Activation::sigmoid, Activation::identity}, Loss::mse);
  randomize(net, 3);
  net.set_dropout({p, 0.0});
  const Index B = 50;  // 10 000 hidden units in all
  const Matrix<double> x = random_matrix(B, 10, 4);
  Workspace<double> ws;
  net.forward(x, ws, true);

  const Matrix<double> a = ws.a[0].topRows(B);
  const Matrix<double> mask = ws.mask[0].topRows(B);
  const Matrix<double> dropped = ws.dropped[0].topRows(B);
  const double keep_scale = 1 / (1 - p);
  Index kept = 0;
  for (Index i = 0; i < mask.size(); ++i) {
    const double m = mask.data()[i];
    ASSERT_TRUE(m == 0.0 || m == keep_scale) << "mask value " << m;
    if (m != 0) {
      ++kept;
      EXPECT_NEAR(dropped.data()[i] / a.data()[i], keep_scale, 1e-15);
    } else {
      EXPECT_EQ(dropped.data()[i], 0.0);
    }
  }
  EXPECT_EIGEN_NEAR(dropped, a.cwiseProduct(mask), 0.0);
  // About 1 − p of the units are kept (the standard deviation of this fraction is ~0.005) ...
  EXPECT_NEAR(double(kept) / double(mask.size()), 1 - p, 0.02);
  // ... so the scaled activations keep their mean.
  EXPECT_NEAR(dropped.mean() / a.mean(), 1.0, 0.03);

  // The next layer reads the dropped-out activations.
  Matrix<double> z1 = dropped * net.W(1);
  z1.rowwise() += net.b(1);
  EXPECT_EIGEN_NEAR(ws.z[1].topRows(B), z1, 1e-13);
}

TEST(Dropout, SameGeneratorStateGivesTheSameMasks) {
  Net net({3, 8, 6, 2}, {Activation::relu, Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 5);
  net.set_dropout({0.5, 0.5, 0.0});
  const Matrix<double> x = random_matrix(4, 3, 6);
  Workspace<double> ws;

  const std::uint64_t state = net.rng().state();
  net.forward(x, ws, true);
  const Matrix<double> mask0 = ws.mask[0], mask1 = ws.mask[1], out = ws.a[2];

  net.forward(x, ws, true);  // the generator has moved on: new masks
  EXPECT_FALSE(chainrule_test::EigenNear("m", "m0", "tol", ws.mask[0], mask0, 0.0));

  net.rng().set_state(state);
  net.forward(x, ws, true);
  EXPECT_EIGEN_NEAR(ws.mask[0], mask0, 0.0);
  EXPECT_EIGEN_NEAR(ws.mask[1], mask1, 0.0);
  EXPECT_EIGEN_NEAR(ws.a[2], out, 0.0);

  // Another network with the same seed draws the same masks.
  Net twin({3, 8, 6, 2}, {Activation::relu, Activation::tanh, Activation::identity}, Loss::mse);
  randomize(twin, 5);
  twin.set_dropout({0.5, 0.5, 0.0});
  twin.rng().set_state(state);
  Workspace<double> twin_ws;
  twin.forward(x, twin_ws, true);
  EXPECT_EIGEN_NEAR(twin_ws.mask[1], mask1, 0.0);
}

// The masks are drawn without a branch per value (random.hpp): the same draws and the same
// keep/drop decisions as comparing uniform() with p, at rates from 0 to just below 1, including
// a rate equal to one of the draws (kept: uniform() >= p). 1003 values leave a remainder for
// any vector width.
TEST(Dropout, KeepMaskMakesTheDecisionsOfUniformDraws) {
  chainrule::SplitMix64 probe(7);
  for (int i = 0; i < 10; ++i) probe.uniform();
  const double tie = probe.uniform();  // the 11th draw of seed 7
  for (double p : {0.0, 1e-17, 0.1, 0.2, 0.5, tie, 0.9, 1.0 - 0x1.0p-53}) {
    SCOPED_TRACE(p);
    chainrule::SplitMix64 reference(7), masked(7);
    std::vector<float> mask(1003);
    masked.keep_mask(mask.data(), std::int64_t(mask.size()), p, 2.5f);
    int differ = 0, kept = 0;
    for (float m : mask) {
      const float expected = reference.uniform() >= p ? 2.5f : 0.0f;
      differ += m != expected;
      kept += m == 2.5f;
    }
    EXPECT_EQ(differ, 0);
    EXPECT_EQ(masked.state(), reference.state());  // both moved on by 1003 draws
    if (p == tie) {
      EXPECT_EQ(mask[10], 2.5f);
    }
    if (p == 0.0) {
      EXPECT_EQ(kept, 1003);
    }
    if (p == 0.5) {
      EXPECT_NEAR(kept, 501, 60);
    }
  }
}

// With the mask held fixed (same generator state before every pass), backprop through the
// dropout layers is the derivative of the training-mode cost.
TEST(Dropout, GradientMatchesFiniteDifferencesWithAFixedMask) {
  Net net({3, 6, 5, 2}, {Activation::tanh, Activation::sigmoid, Activation::identity}, Loss::mse);
  randomize(net, 7);
  net.set_dropout({0.4, 0.25, 0.0});
  const Matrix<double> x = random_matrix(4, 3, 8);
  const Matrix<double> y_values = random_matrix(4, 2, 9);
  const Targets<double> y = value_targets(y_values);
  const std::uint64_t state = 12345;

  const auto training_loss = [&] {
    Workspace<double> ws;
    net.rng().set_state(state);
    net.forward(x, ws, true);
    return double(net.output_delta(y, ws, x.rows()).loss_sum) / double(x.rows());
  };
  Workspace<double> ws;
  net.rng().set_state(state);
  net.zero_grad();
  net.accumulate_gradients(x, y, ws, 1.0 / double(x.rows()), true);
  ASSERT_GT((ws.mask[0].array() == 0).count(), 0);  // some units really are dropped
  const Vec backprop = grads_of(net);

  const double h = 1e-6;
  Vec numeric(net.n_params());
  for (Index i = 0; i < net.n_params(); ++i) {
    const double saved = net.params()[i];
    net.params()[i] = saved + h;
    const double up = training_loss();
    net.params()[i] = saved - h;
    const double down = training_loss();
    net.params()[i] = saved;
    numeric[i] = (up - down) / (2 * h);
  }
  EXPECT_EIGEN_NEAR(backprop, numeric, 1e-8);
}

TEST(Dropout, SwitchedOnAfterTheWorkspaceWasSized) {
  Net net({3, 8, 2}, {Activation::relu, Activation::identity}, Loss::mse);
  randomize(net, 10);
  Workspace<double> ws;
  net.forward(random_matrix(6, 3, 11), ws, true);  // sized with no dropout: no mask storage
  ASSERT_EQ(ws.mask[0].rows(), 0);
  net.set_dropout({0.5, 0.0});
  const Matrix<double> x = random_matrix(4, 3, 12);
  net.forward(x, ws, true);
  EXPECT_EQ(ws.mask[0].rows(), 6);
  EXPECT_EIGEN_NEAR(ws.dropped[0].topRows(4), ws.a[0].topRows(4).cwiseProduct(ws.mask[0].topRows(4)),
                    0.0);
}

}  // namespace
