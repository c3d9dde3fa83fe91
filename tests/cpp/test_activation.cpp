// Activations: forward a = σ(z + b) and backward δ = ∂C/∂a ⊙ σ'(z) on hand-computed values.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "chainrule/activation.hpp"
#include "eigen_near.hpp"

namespace {

using chainrule::Activation;
using chainrule::ConstRowVectorMap;
using chainrule::Matrix;
using chainrule::RowVector;

constexpr double kTol = 1e-15;

// z_in holds a_prev·W; returns z = z_in + b (row-wise) and a = σ(z).
struct Forward {
  Matrix<double> z, a;
};
Forward forward(Activation act, Matrix<double> z_in, const RowVector<double>& b,
                double slope = 0.01) {
  Matrix<double> a(z_in.rows(), z_in.cols());
  const ConstRowVectorMap<double> b_map(b.data(), b.size());
  chainrule::bias_activation_forward<double>(act, slope, b_map, z_in, a);
  return {z_in, a};
}

Matrix<double> backward(Activation act, const Matrix<double>& z, const Matrix<double>& a,
                        Matrix<double> dC_da, double slope = 0.01) {
  chainrule::activation_backward<double>(act, slope, z, a, dC_da);
  return dC_da;
}

TEST(ActivationForward, IdentityAddsTheBias) {
  const Matrix<double> z_in{{1.0, -2.0, 0.5}, {0.0, 0.0, 0.0}};
  const RowVector<double> b{{0.5, 1.0, -0.5}};
  const Matrix<double> expected{{1.5, -1.0, 0.0}, {0.5, 1.0, -0.5}};
  const Forward f = forward(Activation::identity, z_in, b);
  EXPECT_EIGEN_NEAR(f.z, expected, kTol);
  EXPECT_EIGEN_NEAR(f.a, expected, kTol);
}

TEST(ActivationForward, Sigmoid) {
  const Matrix<double> z_in{{-1.0, 0.5, -2.0}};
  const RowVector<double> b{{1.0, 0.5, 0.0}};
  const Forward f = forward(Activation::sigmoid, z_in, b);
  const Matrix<double> z{{0.0, 1.0, -2.0}};
  // σ(0) = 1/2, σ(1) = 1/(1 + e⁻¹), σ(−2) = 1/(1 + e²)
  const Matrix<double> a{{0.5, 0.7310585786300049, 0.11920292202211755}};
  EXPECT_EIGEN_NEAR(f.z, z, kTol);
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
}

TEST(ActivationForward, SigmoidSaturatesWithoutOverflow) {
  const Forward f = forward(Activation::sigmoid, Matrix<double>{{-1000.0, 1000.0, -40.0}},
                            RowVector<double>::Zero(3));
  const Matrix<double> a{{0.0, 1.0, 4.248354255291589e-18}};  // σ(−40) = e⁻⁴⁰/(1 + e⁻⁴⁰)
  EXPECT_EIGEN_NEAR(f.a, a, 1e-30);
  EXPECT_TRUE(f.a.allFinite());
}

TEST(ActivationForward, Tanh) {
  const Matrix<double> z_in{{0.0, 2.0, -0.5}};
  const RowVector<double> b{{0.0, -1.0, 0.0}};
  const Forward f = forward(Activation::tanh, z_in, b);
  const Matrix<double> a{{0.0, 0.7615941559557649, -0.46211715726000974}};
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
}

TEST(ActivationForward, ReluAtNegativeZeroAndPositive) {
  const Forward f = forward(Activation::relu, Matrix<double>{{-1.0, 0.0, 1.5}},
                            RowVector<double>{{-0.5, 0.0, 0.5}});
  const Matrix<double> z{{-1.5, 0.0, 2.0}};
  const Matrix<double> a{{0.0, 0.0, 2.0}};
  EXPECT_EIGEN_NEAR(f.z, z, kTol);
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
}

TEST(ActivationForward, LeakyReluUsesTheSlopeBelowZero) {
  const Forward f = forward(Activation::leaky_relu, Matrix<double>{{-2.0, 3.0, 0.0}},
                            RowVector<double>::Zero(3), 0.1);
  const Matrix<double> a{{-0.2, 3.0, 0.0}};
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
}

TEST(ActivationForward, SoftmaxRowByRowAfterTheBias) {
  const Matrix<double> z_in{{0.0, 2.0, 4.0}, {-1.0, 0.0, 1.0}};
  const RowVector<double> b{{1.0, 0.0, -1.0}};
  const Forward f = forward(Activation::softmax, z_in, b);
  const Matrix<double> z{{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}};
  // e^z / Σ e^z for z = (1, 2, 3), and a uniform row for equal logits.
  const Matrix<double> a{{0.09003057317038046, 0.24472847105479767, 0.6652409557748219},
                         {1.0 / 3, 1.0 / 3, 1.0 / 3}};
  EXPECT_EIGEN_NEAR(f.z, z, kTol);
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
  EXPECT_NEAR(f.a.row(0).sum(), 1.0, kTol);
}

TEST(ActivationForward, SoftmaxIsStableForHugeLogits) {
  const Forward f = forward(Activation::softmax, Matrix<double>{{1000.0, 1001.0}, {-1000.0, 0.0}},
                            RowVector<double>::Zero(2));
  // (1, e)/(1 + e): only the difference of the logits matters.
  const Matrix<double> a{{0.2689414213699951, 0.7310585786300049}, {0.0, 1.0}};
  ASSERT_TRUE(f.a.allFinite()) << f.a;
  EXPECT_EIGEN_NEAR(f.a, a, kTol);
}

TEST(ActivationBackward, IdentityPassesTheGradientThrough) {
  const Matrix<double> z{{3.0, -4.0}};
  const Matrix<double> g{{0.25, -7.0}};
  EXPECT_EIGEN_NEAR(backward(Activation::identity, z, z, g), g, 0.0);
}

TEST(ActivationBackward, SigmoidMultipliesByAOneMinusA) {
  const Matrix<double> z{{0.0, 1.0}};
  const Matrix<double> a{{0.5, 0.7310585786300049}};
  const Matrix<double> g{{2.0, -1.0}};
  // σ'(0) = 1/4, σ'(1) = σ(1)(1 − σ(1)) = 0.19661193324148185
  const Matrix<double> delta{{0.5, -0.19661193324148185}};
  EXPECT_EIGEN_NEAR(backward(Activation::sigmoid, z, a, g), delta, kTol);
}

TEST(ActivationBackward, TanhMultipliesByOneMinusASquared) {
  const Matrix<double> z{{0.0, 1.0}};
  const Matrix<double> a{{0.0, 0.7615941559557649}};
  const Matrix<double> g{{3.0, 2.0}};
  const Matrix<double> delta{{3.0, 0.8399486832280523}};  // 2(1 − tanh²1)
  EXPECT_EIGEN_NEAR(backward(Activation::tanh, z, a, g), delta, kTol);
}

TEST(ActivationBackward, ReluPassesOnlyWherePositive) {
  const Matrix<double> z{{-1.0, 2.0, 0.0}};
  const Matrix<double> a{{0.0, 2.0, 0.0}};
  const Matrix<double> g{{5.0, 7.0, 9.0}};
  const Matrix<double> delta{{0.0, 7.0, 0.0}};
  EXPECT_EIGEN_NEAR(backward(Activation::relu, z, a, g), delta, 0.0);
}

TEST(ActivationBackward, LeakyReluScalesNegativeSideBySlope) {
  const Matrix<double> z{{-1.0, 2.0}};
  const Matrix<double> a{{-0.1, 2.0}};
  const Matrix<double> g{{5.0, 7.0}};
  const Matrix<double> delta{{0.5, 7.0}};
  EXPECT_EIGEN_NEAR(backward(Activation::leaky_relu, z, a, g, 0.1), delta, kTol);
}

TEST(ActivationBackward, SoftmaxIsTheJacobianVectorProduct) {
  // δ_i = a_i (g_i − g·a); with a = (0.2, 0.3, 0.5), g = (1, 2, 3): g·a = 2.3.
  const Matrix<double> a{{0.2, 0.3, 0.5}, {0.5, 0.25, 0.25}};
  const Matrix<double> g{{1.0, 2.0, 3.0}, {4.0, 0.0, 0.0}};
  const Matrix<double> delta{{0.2 * -1.3, 0.3 * -0.3, 0.5 * 0.7},
                             {0.5 * 2.0, 0.25 * -2.0, 0.25 * -2.0}};
  const Matrix<double> got = backward(Activation::softmax, a, a, g);
  EXPECT_EIGEN_NEAR(got, delta, kTol);
  // The same product written with the full Jacobian J = diag(a) − aᵀa, row by row.
  for (int r = 0; r < 2; ++r) {
    const Eigen::MatrixXd J =
        Eigen::MatrixXd(a.row(r).asDiagonal()) - a.row(r).transpose() * a.row(r);
    EXPECT_EIGEN_NEAR(got.row(r), g.row(r) * J, kTol);
  }
  EXPECT_NEAR(got.row(0).sum(), 0.0, kTol);  // shifting all logits changes nothing
}

// σ'(z) against a central difference of the forward pass, for every activation.
TEST(ActivationBackward, MatchesFiniteDifferencesOfForward) {
  const Matrix<double> z{{-1.3, -0.2, 0.4, 2.1}};
  const RowVector<double> no_bias = RowVector<double>::Zero(4);
  const Matrix<double> g{{0.7, -1.1, 0.3, 2.0}};  // an arbitrary upstream gradient ∂C/∂a
  const double h = 1e-6;
  for (Activation act : {Activation::identity, Activation::sigmoid, Activation::tanh,
                         Activation::relu, Activation::leaky_relu, Activation::softmax}) {
    SCOPED_TRACE(chainrule::activation_name(act));
    const Forward f = forward(act, z, no_bias, 0.05);
    Matrix<double> numeric(1, 4);
    for (int j = 0; j < 4; ++j) {
      Matrix<double> zp = z, zm = z;
      zp(0, j) += h;
      zm(0, j) -= h;
      const double cp = g.row(0).dot(forward(act, zp, no_bias, 0.05).a.row(0));
      const double cm = g.row(0).dot(forward(act, zm, no_bias, 0.05).a.row(0));
      numeric(0, j) = (cp - cm) / (2 * h);
    }
    EXPECT_EIGEN_NEAR(backward(act, f.z, f.a, g, 0.05), numeric, 1e-8);
  }
}

TEST(ActivationNames, ParseKnownNamesAndAliasesRejectOthers) {
  EXPECT_EQ(chainrule::parse_activation("identity"), Activation::identity);
  EXPECT_EQ(chainrule::parse_activation("linear"), Activation::identity);
  EXPECT_EQ(chainrule::parse_activation("logistic"), Activation::sigmoid);
  EXPECT_EQ(chainrule::parse_activation("leaky_relu"), Activation::leaky_relu);
  for (Activation act : {Activation::identity, Activation::sigmoid, Activation::tanh,
                         Activation::relu, Activation::leaky_relu, Activation::softmax})
    EXPECT_EQ(chainrule::parse_activation(chainrule::activation_name(act)), act);
  EXPECT_THROW(chainrule::parse_activation("gelu"), std::invalid_argument);
}

}  // namespace
