// The core's threaded matrix product: the same values as Eigen's product, and bit-identical
// results whatever the number of threads (the blocks depend on the shapes only).
#include <stdexcept>
#include <vector>

#include "chainrule/gemm.hpp"
#include "chainrule/threads.hpp"
#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::Index;
using chainrule::Matrix;
using namespace chainrule_test;

// Restores the thread count a test changed.
class ThreadCount : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = chainrule::get_num_threads(); }
  void TearDown() override { chainrule::set_num_threads(saved_); }
  int saved_ = 1;
};

TEST(GemmSplit, SmallProductsAreASingleBlock) {
  const chainrule::GemmSplit s = chainrule::gemm_split(32, 10, 8);
  EXPECT_EQ(s.count, 1);
  EXPECT_EQ(s.size, 32);
  EXPECT_TRUE(s.by_rows);
}

TEST(GemmSplit, BlocksCoverTheLargerDimensionExactly) {
  struct Shape {
    Index rows, cols, depth;
  };
  for (const Shape& sh : std::vector<Shape>{{1024, 256, 128}, {100, 3000, 784}, {777, 513, 300}}) {
    const chainrule::GemmSplit s = chainrule::gemm_split(sh.rows, sh.cols, sh.depth);
    const Index dim = s.by_rows ? sh.rows : sh.cols;
    SCOPED_TRACE(::testing::Message() << sh.rows << "x" << sh.cols << "x" << sh.depth);
    EXPECT_EQ(s.by_rows, sh.rows >= sh.cols);
    EXPECT_GE(s.count, 2);
    EXPECT_GE(s.count * s.size, dim);     // every row (or column) is in a block ...
    EXPECT_LT((s.count - 1) * s.size, dim);  // ... and no block is empty
  }
}

TEST(Gemm, MatchesThePlainProductInEveryMode) {
  struct Case {
    Index rows, cols, depth;
  };
  // Small (one block), split by rows, split by columns.
  for (const Case& c : std::vector<Case>{{5, 7, 3}, {600, 200, 100}, {150, 700, 120}}) {
    SCOPED_TRACE(::testing::Message() << c.rows << "x" << c.cols << "x" << c.depth);
    const Matrix<double> lhs = random_matrix(c.rows, c.depth, 1);
    const Matrix<double> rhs = random_matrix(c.depth, c.cols, 2);
    const Matrix<double> start = random_matrix(c.rows, c.cols, 3);
    const Matrix<double> product = lhs * rhs;

    Matrix<double> dst = start;
    chainrule::gemm(dst, lhs, rhs, 1.0, false);
    EXPECT_EIGEN_NEAR(dst, product, 1e-12);
    dst = start;
    chainrule::gemm(dst, lhs, rhs, 0.5, false);
    EXPECT_EIGEN_NEAR(dst, 0.5 * product, 1e-12);
    dst = start;
    chainrule::gemm(dst, lhs, rhs, 0.25, true);
    EXPECT_EIGEN_NEAR(dst, start + 0.25 * product, 1e-12);

    // Transposed operands, as in dW += a_prevᵀ·δ and d_a_prev = δ·Wᵀ.
    const Matrix<double> lhs_t = lhs.transpose(), rhs_t = rhs.transpose();
    dst = start;
    chainrule::gemm(dst, lhs_t.transpose(), rhs_t.transpose(), 2.0, true);
    EXPECT_EIGEN_NEAR(dst, start + 2.0 * product, 1e-12);
  }
}

TEST_F(ThreadCount, GemmIsBitIdenticalForAnyThreadCount) {
  const Matrix<double> lhs = random_matrix(700, 150, 4);
  const Matrix<double> rhs = random_matrix(150, 300, 5);
  ASSERT_GT(chainrule::gemm_split(700, 300, 150).count, 1);
  std::vector<Matrix<double>> results;
  for (int threads : {1, 2, 3}) {
    chainrule::set_num_threads(threads);
    Matrix<double> dst = random_matrix(700, 300, 6);
    chainrule::gemm(dst, lhs, rhs, 0.3, true);
    results.push_back(dst);
  }
  EXPECT_EIGEN_NEAR(results[1], results[0], 0.0);
  EXPECT_EIGEN_NEAR(results[2], results[0], 0.0);
}

TEST_F(ThreadCount, TrainingIsBitIdenticalForAnyThreadCount) {
  // Wide enough that every product of forward and backward is split into blocks.
  const Matrix<double> x = random_matrix(256, 200, 7);
  const Matrix<double> y = random_matrix(256, 64, 8);
  std::vector<Vec> params;
  for (int threads : {1, 2}) {
    chainrule::set_num_threads(threads);
    Net net({200, 300, 64}, {chainrule::Activation::tanh, chainrule::Activation::identity},
            chainrule::Loss::mse);
    randomize(net, 9, 0.1);
    chainrule::StepOptions options;
    options.lr = 0.01;
    chainrule::TrainStats stats;
    for (int step = 0; step < 3; ++step) net.train_step(x, value_targets(y), options, stats);
    params.push_back(params_of(net));
  }
  EXPECT_EIGEN_NEAR(params[1], params[0], 0.0);
}

TEST_F(ThreadCount, RejectsFewerThanOneThread) {
  EXPECT_THROW(chainrule::set_num_threads(0), std::invalid_argument);
  chainrule::set_num_threads(1);
  EXPECT_EQ(chainrule::get_num_threads(), 1);
}

}  // namespace
