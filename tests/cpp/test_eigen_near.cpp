// The comparison helper itself: it must pass within tolerance and fail loudly otherwise.
#include <limits>
#include <string>

#include "chainrule/types.hpp"
#include "eigen_near.hpp"

namespace {

using chainrule::Matrix;
using chainrule_test::EigenNear;

TEST(EigenNear, PassesWithinToleranceAndAcceptsExpressions) {
  const Matrix<double> a{{1.0, 2.0}, {3.0, 4.0}};
  const Matrix<double> b{{1.0 + 1e-13, 2.0}, {3.0, 4.0 - 1e-13}};
  EXPECT_TRUE(EigenNear("a", "b", "tol", a, b, 1e-12));
  EXPECT_EIGEN_NEAR(a, b, 1e-12);
  EXPECT_EIGEN_NEAR(a.row(1), b.bottomRows(1), 1e-12);
  EXPECT_EIGEN_NEAR(a * b.transpose(), (a * b.transpose()).eval(), 0.0);
  EXPECT_EIGEN_NEAR(a.array().square(), a.cwiseProduct(a), 0.0);
}

TEST(EigenNear, FailsOnDifferenceAndPrintsBothMatricesAndTheDifference) {
  const Matrix<double> a{{1.0, 2.0}, {3.0, 4.0}};
  const Matrix<double> b{{1.0, 2.5}, {3.0, 4.0}};
  const ::testing::AssertionResult r = EigenNear("a", "b", "tol", a, b, 0.1);
  ASSERT_FALSE(r);
  const std::string msg = r.message();
  EXPECT_NE(msg.find("0.5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at (0, 1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2.5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("difference"), std::string::npos) << msg;
}

TEST(EigenNear, FailsOnShapeMismatch) {
  const Matrix<double> a{{1.0, 2.0}};
  const Matrix<double> b{{1.0}, {2.0}};
  const ::testing::AssertionResult r = EigenNear("a", "b", "tol", a, b, 1.0);
  ASSERT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("shape"), std::string::npos);
}

TEST(EigenNear, NaNNeverMatchesButEqualInfinitiesDo) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const Matrix<double> with_nan{{nan, 1.0}};
  EXPECT_FALSE(EigenNear("a", "b", "tol", with_nan, with_nan, 1e9));
  const Matrix<double> with_inf{{inf, -inf}};
  EXPECT_TRUE(EigenNear("a", "b", "tol", with_inf, with_inf, 0.0));
  const Matrix<double> flipped{{-inf, inf}};
  EXPECT_FALSE(EigenNear("a", "b", "tol", with_inf, flipped, 1e9));
}

}  // namespace
