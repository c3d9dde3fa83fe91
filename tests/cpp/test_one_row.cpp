// The one-row forward product (one_row_forward.hpp) against Eigen's plain product, the same
// bits whichever order it reads W's segments in, and a network's one-row predictions against
// its batch forward pass. The packet width P depends on the build, so widths are in packets.
#include <cmath>
#include <limits>
#include <vector>

#include "chainrule/network.hpp"
#include "chainrule/one_row_forward.hpp"
#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::ConstMatrixMap;
using chainrule::Index;
using chainrule::Matrix;
using namespace chainrule_test;

template <class T>
constexpr Index kPacket = chainrule::kSimdWidth<T>;

// z = x·W + b for one row x (1 × depth), reading the segments forwards or backwards.
template <class T>
Matrix<T> one_row(const Matrix<T>& x, const Matrix<T>& W, const Matrix<T>& b, bool backwards) {
  Matrix<T> z(1, W.cols());
  std::vector<T> scratch(chainrule::one_row_scratch_size(W.rows(), W.cols()));
  chainrule::one_row_forward<T>(x.data(), ConstMatrixMap<T>(W.data(), W.rows(), W.cols()),
                                b.data(), z.data(), scratch.data(), backwards);
  return z;
}

TEST(OneRowForward, TakesTwoSegmentsOrMoreInWholePackets) {
  using chainrule::kOneRowSegment;
  using chainrule::one_row_forward_fits;
  const Index P = kPacket<float>;
  EXPECT_TRUE(one_row_forward_fits<float>(kOneRowSegment + 1, P));
  EXPECT_TRUE(one_row_forward_fits<float>(784, 32 * P));
  EXPECT_FALSE(one_row_forward_fits<float>(kOneRowSegment, 8 * P));  // one segment
  EXPECT_FALSE(one_row_forward_fits<float>(784, P + 1));
  EXPECT_EQ(chainrule::one_row_scratch_size(2 * kOneRowSegment + 1, 5), 3 * 5);
}

// Depths with a short last segment and rows left over from the blocks of 8; widths of whole
// 4-packet panels, single packets, and both.
TEST(OneRowForward, IsThePlainProductPlusBias) {
  const Index P = kPacket<double>;
  for (Index depth : {65, 128, 131, 200}) {
    for (Index cols : {P, 3 * P, 4 * P, 9 * P}) {
      SCOPED_TRACE("depth " + std::to_string(depth) + ", cols " + std::to_string(cols));
      const Matrix<double> x = random_matrix(1, depth, 1), W = random_matrix(depth, cols, 2);
      const Matrix<double> b = random_matrix(1, cols, 3);
      const Matrix<double> expected = x * W + b;
      EXPECT_EIGEN_NEAR(one_row(x, W, b, false), expected, 1e-12);
    }
  }
}

TEST(OneRowForward, ReadingBackwardsGivesTheSameBits) {
  const Index P = kPacket<float>;
  const Matrix<float> x = random_matrix(1, 784, 4).cast<float>();
  const Matrix<float> W = random_matrix(784, 32 * P + P, 5).cast<float>();
  const Matrix<float> b = random_matrix(1, W.cols(), 6).cast<float>();
  EXPECT_EIGEN_NEAR(one_row(x, W, b, true), one_row(x, W, b, false), 0.0);
}

TEST(OneRowForward, NaNInTheInputReachesOnlyItsOwnProducts) {
  const Index P = kPacket<double>;
  Matrix<double> x = random_matrix(1, 100, 7), W = random_matrix(100, 2 * P, 8);
  const Matrix<double> b = Matrix<double>::Zero(1, 2 * P);
  x(0, 70) = std::numeric_limits<double>::quiet_NaN();
  W.row(70).setZero();  // 0·NaN is still NaN
  const Matrix<double> z = one_row(x, W, b, true);
  for (Index j = 0; j < z.cols(); ++j) EXPECT_TRUE(std::isnan(z(0, j))) << "column " << j;
}

// predict of one row takes the kernel for the layers it fits (784 → 32P, 32P → 16P) and Eigen
// for the 10-wide output layer; it alternates the order of reading W from call to call.
TEST(OneRowForward, NetworkPredictsOneRowLikeTheBatchForwardPass) {
  using Net = chainrule::Network<double>;
  const Index P = kPacket<double>;
  for (auto hidden : {chainrule::Activation::relu, chainrule::Activation::tanh}) {
    Net net({200, 8 * P, 4 * P, 10}, {hidden, hidden, chainrule::Activation::softmax},
            chainrule::Loss::cross_entropy);
    randomize(net, 9, 0.2);
    const Matrix<double> x = random_matrix(3, 200, 10);
    chainrule::Workspace<double> ws;
    net.forward(x, ws, false);
    for (Index r = 0; r < x.rows(); ++r) {
      Matrix<double> first(1, 10), second(1, 10);
      net.predict(x.row(r), first);
      net.predict(x.row(r), second);  // read backwards
      EXPECT_EIGEN_NEAR(first, second, 0.0);
      EXPECT_EIGEN_NEAR(first, ws.a[2].row(r), 1e-14);
    }
  }
}

}  // namespace
