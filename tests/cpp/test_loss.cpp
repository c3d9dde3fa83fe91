// Losses: per-batch cost Σ_k C_k, output δ = ∂C_k/∂z and hit counts, on hand-computed cases.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "chainrule/loss.hpp"
#include "eigen_near.hpp"

namespace {

using chainrule::Activation;
using chainrule::ConstRowVectorMap;
using chainrule::Index;
using chainrule::Loss;
using chainrule::Matrix;
using chainrule::RowVector;
using chainrule::Targets;

constexpr double kTol = 1e-15;

struct LossOut {
  double loss_sum;
  Index n_correct;
  Matrix<double> delta;
};

// Runs the loss on output logits z; a = σ(z) comes from the (separately tested) forward pass.
LossOut run(Loss loss, Activation act, const Matrix<double>& z_in, const Targets<double>& y) {
  Matrix<double> z = z_in, a(z.rows(), z.cols()), delta(z.rows(), z.cols());
  const RowVector<double> no_bias = RowVector<double>::Zero(z.cols());
  const ConstRowVectorMap<double> b(no_bias.data(), no_bias.size());
  chainrule::bias_activation_forward<double>(act, 0.01, b, z, a);
  const auto r = chainrule::loss_forward_backward<double>(loss, act, 0.01, z, a, y, delta);
  return {r.loss_sum, r.n_correct, delta};
}

LossOut run_values(Loss loss, Activation act, const Matrix<double>& z, const Matrix<double>& y) {
  Targets<double> t;
  t.values = y.data();
  t.stride = y.cols();
  return run(loss, act, z, t);
}

LossOut run_labels(const Matrix<double>& z, const std::vector<std::int32_t>& labels) {
  Targets<double> t;
  t.labels = labels.data();
  return run(Loss::cross_entropy, Activation::softmax, z, t);
}

TEST(MseLoss, SumOfSquaresAndTwiceTheResidual) {
  const Matrix<double> z{{0.5, -1.0}, {2.0, 0.0}};
  const Matrix<double> y{{1.0, 1.0}, {2.0, 1.0}};
  const LossOut out = run_values(Loss::mse, Activation::identity, z, y);
  // C_0 = 0.25 + 4, C_1 = 0 + 1;  δ = 2(a − y) with σ' = 1.
  EXPECT_NEAR(out.loss_sum, 5.25, kTol);
  const Matrix<double> delta{{-1.0, -4.0}, {0.0, -2.0}};
  EXPECT_EIGEN_NEAR(out.delta, delta, kTol);
}

TEST(MseLoss, ChainsThroughTheOutputActivation) {
  const Matrix<double> z{{0.0, 1.0}};
  const Matrix<double> y{{1.0, 0.0}};
  const LossOut out = run_values(Loss::mse, Activation::sigmoid, z, y);
  // C = (1/2 − 1)² + σ(1)²;  δ = 2(a − y)·σ'(z) = (−1·1/4, 2σ(1)·σ(1)(1 − σ(1))).
  EXPECT_NEAR(out.loss_sum, 0.7844466453885230, kTol);
  const Matrix<double> delta{{-0.25, 0.28746968091443026}};
  EXPECT_EIGEN_NEAR(out.delta, delta, kTol);
}

TEST(CrossEntropyLoss, IntegerLabels) {
  const Matrix<double> z{{1.0, 2.0, 3.0}, {3.0, 1.0, 2.0}};
  const LossOut out = run_labels(z, {2, 1});
  // C = log Σ e^z − z_label = 3.4076059644443803 − 3, and − 1.
  EXPECT_NEAR(out.loss_sum, 0.4076059644443803 + 2.4076059644443803, 1e-14);
  // δ = softmax(z) − onehot(label).
  const Matrix<double> delta{{0.09003057317038046, 0.24472847105479767, -0.3347590442251781},
                             {0.6652409557748219, -0.9099694268296195, 0.24472847105479767}};
  EXPECT_EIGEN_NEAR(out.delta, delta, kTol);
  EXPECT_EQ(out.n_correct, 1);  // row 0 predicts 2 (right), row 1 predicts 0 (wrong)
}

TEST(CrossEntropyLoss, OneHotTargetsMatchIntegerLabels) {
  const Matrix<double> z{{1.0, 2.0, 3.0}, {3.0, 1.0, 2.0}};
  const Matrix<double> y{{0.0, 0.0, 1.0}, {0.0, 1.0, 0.0}};
  const LossOut one_hot = run_values(Loss::cross_entropy, Activation::softmax, z, y);
  const LossOut labels = run_labels(z, {2, 1});
  EXPECT_NEAR(one_hot.loss_sum, 2.815211928888761, 1e-14);
  EXPECT_NEAR(one_hot.loss_sum, labels.loss_sum, 1e-14);
  EXPECT_EIGEN_NEAR(one_hot.delta, labels.delta, kTol);
  EXPECT_EQ(one_hot.n_correct, 1);
}

TEST(CrossEntropyLoss, SoftAndUnnormalisedTargets) {
  const Matrix<double> z{{1.0, 2.0, 3.0}};
  // C = −Σ y_j log a_j = lse·Σy − y·z;  δ = a·Σy − y.
  const LossOut soft =
      run_values(Loss::cross_entropy, Activation::softmax, z, Matrix<double>{{0.25, 0.25, 0.5}});
  EXPECT_NEAR(soft.loss_sum, 1.1576059644443803, 1e-14);
  const Matrix<double> soft_delta{{0.09003057317038046 - 0.25, 0.24472847105479767 - 0.25,
                                   0.6652409557748219 - 0.5}};
  EXPECT_EIGEN_NEAR(soft.delta, soft_delta, kTol);
  EXPECT_EQ(soft.n_correct, 1);  // argmax y = 2 = argmax z

  const LossOut twice =
      run_values(Loss::cross_entropy, Activation::softmax, z, Matrix<double>{{1.0, 0.0, 1.0}});
  EXPECT_NEAR(twice.loss_sum, 2.815211928888761, 1e-14);
  const Matrix<double> twice_delta{{-0.8199388536592391, 0.4894569421095953, 0.3304819115496438}};
  EXPECT_EIGEN_NEAR(twice.delta, twice_delta, kTol);
}

TEST(CrossEntropyLoss, StableForHugeLogits) {
  const Matrix<double> z{{1000.0, 1001.0}, {1000.0, 0.0}, {-1000.0, 1000.0}};
  const LossOut out = run_labels(z, {0, 0, 0});
  // log(1 + e), log(1 + e⁻¹⁰⁰⁰) = 0, and 2000.
  ASSERT_TRUE(std::isfinite(out.loss_sum));
  EXPECT_NEAR(out.loss_sum, 2001.3132616875182, 1e-10);
  const Matrix<double> delta{
      {0.2689414213699951 - 1.0, 0.7310585786300049}, {0.0, 0.0}, {-1.0, 1.0}};
  ASSERT_TRUE(out.delta.allFinite());
  EXPECT_EIGEN_NEAR(out.delta, delta, kTol);
  EXPECT_EQ(out.n_correct, 1);
}

TEST(BinaryCrossEntropyLoss, ValuesDeltaAndHits) {
  const Matrix<double> z{{2.0, -1.0}, {0.0, 0.0}};
  const Matrix<double> y{{1.0, 0.0}, {1.0, 1.0}};
  const LossOut out = run_values(Loss::binary_cross_entropy, Activation::sigmoid, z, y);
  // Row 0: log(1 + e⁻²) + log(1 + e⁻¹); row 1: 2 log 2.
  EXPECT_NEAR(out.loss_sum, 1.826484059681086, 1e-14);
  const Matrix<double> delta{{-0.11920292202211755, 0.2689414213699951}, {-0.5, -0.5}};
  EXPECT_EIGEN_NEAR(out.delta, delta, kTol);
  // A row counts when every output is on the right side of 1/2; z = 0 is not above it.
  EXPECT_EQ(out.n_correct, 1);
}

TEST(BinaryCrossEntropyLoss, StableForLargeLogits) {
  const Matrix<double> z{{1000.0, -1000.0, 1000.0, -1000.0}, {40.0, -40.0, 40.0, -40.0}};
  const Matrix<double> y{{1.0, 0.0, 0.0, 1.0}, {1.0, 0.0, 1.0, 0.0}};
  const LossOut out = run_values(Loss::binary_cross_entropy, Activation::sigmoid, z, y);
  // Two confidently wrong outputs cost |z| each; the right ones cost log(1 + e^−|z|).
  ASSERT_TRUE(std::isfinite(out.loss_sum));
  EXPECT_NEAR(out.loss_sum, 2000.0, 1e-12);
  const Matrix<double> delta{{0.0, 0.0, 1.0, -1.0},
                             {-4.248354255291589e-18, 4.248354255291589e-18,
                              -4.248354255291589e-18, 4.248354255291589e-18}};
  ASSERT_TRUE(out.delta.allFinite());
  // σ(40) rounds to 1 in double, so a − y there is 0 rather than −4.2e-18.
  EXPECT_EIGEN_NEAR(out.delta, delta, 1e-17);
  EXPECT_EQ(out.n_correct, 1);
}

// δ must be the derivative of the reported cost with respect to z, for every fused pair.
TEST(LossDelta, IsTheGradientOfTheLossSum) {
  struct Case {
    Loss loss;
    Activation act;
    Matrix<double> y;
  };
  const Matrix<double> z{{0.3, -1.2, 0.8}, {-0.4, 0.1, 2.0}};
  const std::vector<Case> cases = {
      {Loss::mse, Activation::identity, Matrix<double>{{1.0, 0.0, -1.0}, {0.5, 0.5, 0.5}}},
      {Loss::mse, Activation::tanh, Matrix<double>{{1.0, 0.0, -1.0}, {0.5, 0.5, 0.5}}},
      {Loss::mse, Activation::softmax, Matrix<double>{{1.0, 0.0, 0.0}, {0.2, 0.3, 0.5}}},
      {Loss::cross_entropy, Activation::softmax, Matrix<double>{{0.1, 0.6, 0.3}, {0.0, 0.0, 1.0}}},
      {Loss::binary_cross_entropy, Activation::sigmoid,
       Matrix<double>{{0.2, 1.0, 0.0}, {0.9, 0.5, 1.0}}},
  };
  const double h = 1e-6;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(chainrule::loss_name(c.loss)) + " with " +
                 chainrule::activation_name(c.act));
    const LossOut out = run_values(c.loss, c.act, z, c.y);
    Matrix<double> numeric(z.rows(), z.cols());
    for (Index r = 0; r < z.rows(); ++r)
      for (Index j = 0; j < z.cols(); ++j) {
        Matrix<double> zp = z, zm = z;
        zp(r, j) += h;
        zm(r, j) -= h;
        numeric(r, j) = (run_values(c.loss, c.act, zp, c.y).loss_sum -
                         run_values(c.loss, c.act, zm, c.y).loss_sum) / (2 * h);
      }
    EXPECT_EIGEN_NEAR(out.delta, numeric, 1e-8);
  }
}

TEST(LossPairing, CheckOutputActivationRejectsWrongPairings) {
  using chainrule::check_output_activation;
  EXPECT_NO_THROW(check_output_activation(Loss::cross_entropy, Activation::softmax));
  EXPECT_NO_THROW(check_output_activation(Loss::binary_cross_entropy, Activation::sigmoid));
  for (Activation act : {Activation::identity, Activation::sigmoid, Activation::tanh,
                         Activation::relu, Activation::leaky_relu, Activation::softmax})
    EXPECT_NO_THROW(check_output_activation(Loss::mse, act)) << chainrule::activation_name(act);
  for (Activation act : {Activation::identity, Activation::sigmoid, Activation::tanh,
                         Activation::relu, Activation::leaky_relu}) {
    EXPECT_THROW(check_output_activation(Loss::cross_entropy, act), std::invalid_argument);
  }
  for (Activation act : {Activation::identity, Activation::softmax, Activation::tanh,
                         Activation::relu, Activation::leaky_relu}) {
    EXPECT_THROW(check_output_activation(Loss::binary_cross_entropy, act), std::invalid_argument);
  }
}

TEST(LossNames, ParseKnownNamesAndAliasesRejectOthers) {
  EXPECT_EQ(chainrule::parse_loss("mse"), Loss::mse);
  EXPECT_EQ(chainrule::parse_loss("squared_error"), Loss::mse);
  EXPECT_EQ(chainrule::parse_loss("categorical_cross_entropy"), Loss::cross_entropy);
  EXPECT_EQ(chainrule::parse_loss("binary_cross_entropy"), Loss::binary_cross_entropy);
  EXPECT_THROW(chainrule::parse_loss("hinge"), std::invalid_argument);
}

}  // namespace
