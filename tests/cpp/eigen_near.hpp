// EXPECT_EIGEN_NEAR(a, b, tol): a and b have the same shape and max |a − b| <= tol.
// On failure the message shows both matrices, their difference and where the largest one is.
// a and b may be any Eigen expressions (matrices, maps, blocks, products, arrays).
#pragma once

#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <sstream>

namespace chainrule_test {

template <class A, class B>
::testing::AssertionResult EigenNear(const char* a_expr, const char* b_expr, const char* tol_expr,
                                     const Eigen::DenseBase<A>& a_in,
                                     const Eigen::DenseBase<B>& b_in, double tol) {
  // Evaluate once, so products and other lazy expressions can be read coefficient-wise.
  const auto a = a_in.derived().eval();
  const auto b = b_in.derived().eval();
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    return ::testing::AssertionFailure()
           << a_expr << " and " << b_expr << " differ in shape: (" << a.rows() << ", "
           << a.cols() << ") vs (" << b.rows() << ", " << b.cols() << ")";
  }
  Eigen::MatrixXd diff(a.rows(), a.cols());
  double worst = 0;  // the largest |a − b|, NaN once any pair involves a NaN
  Eigen::Index worst_r = 0, worst_c = 0;
  for (Eigen::Index r = 0; r < a.rows(); ++r) {
    for (Eigen::Index c = 0; c < a.cols(); ++c) {
      const double x = double(a.coeff(r, c)), y = double(b.coeff(r, c));
      // Equal values (including equal infinities) match; a NaN never does.
      const double d = (x == y) ? 0.0 : std::abs(x - y);
      diff(r, c) = x - y;
      if (std::isnan(worst)) continue;
      if (std::isnan(d) || d > worst) worst = d, worst_r = r, worst_c = c;
    }
  }
  const bool ok = worst <= tol;  // false for NaN
  if (ok) return ::testing::AssertionSuccess();
  const Eigen::IOFormat fmt(Eigen::FullPrecision, 0, ", ", "\n", "  [", "]");
  std::ostringstream msg;
  msg << "max |" << a_expr << " - " << b_expr << "| = " << worst << " at (" << worst_r << ", "
      << worst_c << ") exceeds " << tol_expr << " = " << tol << "\n"
      << a_expr << " (" << a.rows() << "x" << a.cols() << "):\n"
      << a.template cast<double>().format(fmt) << "\n"
      << b_expr << " (" << b.rows() << "x" << b.cols() << "):\n"
      << b.template cast<double>().format(fmt) << "\n"
      << "difference:\n"
      << diff.format(fmt);
  return ::testing::AssertionFailure() << msg.str();
}

}  // namespace chainrule_test

#define EXPECT_EIGEN_NEAR(a, b, tol) EXPECT_PRED_FORMAT3(::chainrule_test::EigenNear, a, b, tol)
#define ASSERT_EIGEN_NEAR(a, b, tol) ASSERT_PRED_FORMAT3(::chainrule_test::EigenNear, a, b, tol)
