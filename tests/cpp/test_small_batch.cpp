// The small-batch kernels: the forward product that reads W in place (small_batch_forward.hpp)
// and the weight gradient with its sum of squares (weight_gradient.hpp), each against Eigen's
// plain product; and a training step that takes them (in the x86-64-v3 build) against the
// generic path. Their packet width P depends on the build, so shapes are given in packets.
#include <cmath>
#include <limits>
#include <vector>

#include "chainrule/small_batch_forward.hpp"
#include "chainrule/threads.hpp"
#include "chainrule/weight_gradient.hpp"
#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::ConstMatrixMap;
using chainrule::Index;
using chainrule::Matrix;
using chainrule::MatrixMap;
using chainrule::MatrixRef;
using namespace chainrule_test;

template <class T>
constexpr Index kPacket = chainrule::kSimdWidth<T>;

// Restores the thread count a test changed.
class SmallBatchThreads : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = chainrule::get_num_threads(); }
  void TearDown() override { chainrule::set_num_threads(saved_); }
  int saved_ = 1;
};

// z and relu(z) from small_batch_forward, for x (rows × depth), W (depth × cols), b (cols).
struct Forward {
  Matrix<double> z, a;
};
Forward small_batch_forward(const Matrix<double>& x, const Matrix<double>& W,
                            const Matrix<double>& b, bool relu_in_place = false) {
  Forward out{Matrix<double>(x.rows(), W.cols()), Matrix<double>(x.rows(), W.cols())};
  MatrixRef<double> a = relu_in_place ? MatrixRef<double>(out.z) : MatrixRef<double>(out.a);
  chainrule::small_batch_forward<double>(x, ConstMatrixMap<double>(W.data(), W.rows(), W.cols()),
                                         b.data(), out.z, &a);
  if (relu_in_place) out.a = out.z;
  return out;
}

TEST(SmallBatchForward, TakesSmallBatchesInWholePackets) {
  using chainrule::small_batch_forward_fits;
  const Index P = kPacket<double>;
  EXPECT_TRUE(small_batch_forward_fits<double>(4, P));
  EXPECT_TRUE(small_batch_forward_fits<double>(64, 7 * P));
  EXPECT_FALSE(small_batch_forward_fits<double>(3, P));   // GEMV territory
  EXPECT_FALSE(small_batch_forward_fits<double>(65, P));  // the packed product's
  EXPECT_FALSE(small_batch_forward_fits<double>(32, P + 1));
}

// Every row remainder (rows mod 4), every panel width (1, 2, 3 packets, several panels), and
// depths of one slice (up to 256), two (257, 512: the sums carried over in z) and four (784).
TEST(SmallBatchForward, IsThePlainProductPlusBiasThenRelu) {
  const Index P = kPacket<double>;
  for (Index rows : {4, 5, 6, 7, 32, 33, 64})
    for (Index cols : {P, 2 * P, 3 * P, 4 * P, 5 * P, 7 * P})
      for (Index depth : {0, 1, 3, 50, 256, 257, 512, 784}) {
        SCOPED_TRACE(::testing::Message() << rows << " rows, " << cols << " cols, depth " << depth);
        const Matrix<double> x = random_matrix(rows, depth, 1);
        const Matrix<double> W = random_matrix(depth, cols, 2);
        const Matrix<double> b = random_matrix(1, cols, 3);
        const Matrix<double> expected = (x * W).rowwise() + b.row(0);
        const Forward got = small_batch_forward(x, W, b);
        EXPECT_EIGEN_NEAR(got.z, expected, 1e-13);
        EXPECT_EIGEN_NEAR(got.a, got.z.cwiseMax(0.0).eval(), 0.0);
        // In place (inference computes a over z): the same bits.
        EXPECT_EIGEN_NEAR(small_batch_forward(x, W, b, true).a, got.a, 0.0);
      }
}

// The bits, not only the values: each element is summed over the whole depth in order (one
// multiply-add per k, fused where the build has FMA) and then b added, across the slices whose
// partial sums wait in z. A slice that restarted its sum, or added b early, would differ.
TEST(SmallBatchForward, SumsEachElementInDepthOrderAcrossSlices) {
  const Index P = kPacket<double>;
  for (Index depth : {257, 784}) {
    SCOPED_TRACE(::testing::Message() << "depth " << depth);
    const Index rows = 7, cols = 5 * P;
    const Matrix<double> x = random_matrix(rows, depth, 10);
    const Matrix<double> W = random_matrix(depth, cols, 11);
    const Matrix<double> b = random_matrix(1, cols, 12);
    Matrix<double> expected(rows, cols);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j) {
        double sum = 0;
        for (Index k = 0; k < depth; ++k) {
#ifdef __FMA__
          sum = std::fma(x(i, k), W(k, j), sum);
#else
          sum = sum + x(i, k) * W(k, j);  // no FMA instruction, so nothing to contract into
#endif
        }
        expected(i, j) = sum + b(0, j);
      }
    EXPECT_EIGEN_NEAR(small_batch_forward(x, W, b).z, expected, 0.0);
  }
}

// x may be a block of a wider matrix (a layer's input taken from a workspace).
TEST(SmallBatchForward, ReadsStridedInputs) {
  const Index P = kPacket<double>;
  const Matrix<double> wide = random_matrix(9, 40, 4);
  const Matrix<double> W = random_matrix(30, 3 * P, 5);
  const Matrix<double> b = random_matrix(1, 3 * P, 6);
  const chainrule::ConstMatrixRef<double> x = wide.block(1, 2, 8, 30);
  Matrix<double> z(8, 3 * P);
  chainrule::small_batch_forward<double>(x, ConstMatrixMap<double>(W.data(), 30, 3 * P),
                                         b.data(), z, nullptr);
  const Matrix<double> expected = (x * W).rowwise() + b.row(0);
  EXPECT_EIGEN_NEAR(z, expected, 1e-13);
}

TEST(SmallBatchForward, NaNStaysNaNThroughRelu) {
  const Index P = kPacket<double>;
  Matrix<double> x = random_matrix(4, 5, 7);
  x(2, 3) = std::numeric_limits<double>::quiet_NaN();
  const Forward got = small_batch_forward(x, random_matrix(5, P, 8), random_matrix(1, P, 9));
  for (Index j = 0; j < P; ++j) {
    EXPECT_TRUE(std::isnan(got.z(2, j)));
    EXPECT_TRUE(std::isnan(got.a(2, j)));
    EXPECT_FALSE(std::isnan(got.a(1, j)));
  }
}

TEST_F(SmallBatchThreads, ForwardGivesTheSameBitsOnOneAndTwoThreads) {
  const Index P = kPacket<float>;
  const Matrix<float> x = random_matrix(32, 400, 10).cast<float>();
  const Matrix<float> W = random_matrix(400, 32 * P, 11).cast<float>();  // 12.8 M multiply-adds
  const Matrix<float> b = random_matrix(1, 32 * P, 12).cast<float>();
  std::vector<Matrix<float>> z;
  for (int threads : {1, 2}) {
    chainrule::set_num_threads(threads);
    Matrix<float> out(32, 32 * P);
    chainrule::small_batch_forward<float>(x, ConstMatrixMap<float>(W.data(), 400, 32 * P),
                                          b.data(), out, nullptr);
    z.push_back(out);
  }
  EXPECT_EIGEN_NEAR(z[1], z[0], 0.0f);
}

// dW = scale·a_prevᵀ·δ written into dW (whatever it held), and the returned Σ dW².
template <class T>
T weight_gradient(const Matrix<T>& a_prev, const Matrix<T>& delta, T scale, Matrix<T>& dW) {
  dW.setConstant(T(12345));  // overwritten, never added to
  MatrixMap<T> map(dW.data(), dW.rows(), dW.cols());
  return chainrule::weight_gradient<T>(a_prev, delta, scale, map);
}

TEST(WeightGradient, TakesShortDepthsInWholePackets) {
  using chainrule::weight_gradient_fits;
  const Index P = kPacket<float>;
  EXPECT_TRUE(weight_gradient_fits<float>(1, P));
  EXPECT_TRUE(weight_gradient_fits<float>(64, 9 * P));
  EXPECT_FALSE(weight_gradient_fits<float>(65, P));
  EXPECT_FALSE(weight_gradient_fits<float>(32, 10 * P + 2));
}

// Every row remainder (rows mod 6), odd packet counts, one row block and several.
TEST(WeightGradient, IsTheScaledProductAndReturnsItsSumOfSquares) {
  const Index P = kPacket<double>;
  for (Index rows : {1, 5, 6, 7, 48, 49, 300})
    for (Index cols : {P, 2 * P, 3 * P, 5 * P})
      for (Index depth : {1, 4, 32, 64}) {
        SCOPED_TRACE(::testing::Message() << rows << " rows, " << cols << " cols, depth " << depth);
        const Matrix<double> a_prev = random_matrix(depth, rows, 20);
        const Matrix<double> delta = random_matrix(depth, cols, 21);
        const double scale = 1.0 / double(depth);
        Matrix<double> dW(rows, cols);
        const double sum_sq = weight_gradient(a_prev, delta, scale, dW);
        const Matrix<double> expected = scale * (a_prev.transpose() * delta);
        EXPECT_EIGEN_NEAR(dW, expected, 1e-14);
        EXPECT_NEAR(sum_sq, expected.squaredNorm(), 1e-12 * expected.squaredNorm());
      }
}

TEST(WeightGradient, AccumulatesAndIntoZerosGivesTheOverwrittenValues) {
  const Index P = kPacket<double>;
  const Matrix<double> a_prev = random_matrix(16, 13, 26);
  const Matrix<double> delta = random_matrix(16, 3 * P, 27);
  const Matrix<double> start = random_matrix(13, 3 * P, 28);
  Matrix<double> dW = start;
  MatrixMap<double> map(dW.data(), 13, 3 * P);
  const double sum_sq = chainrule::weight_gradient<double>(a_prev, delta, 0.5, map, true);
  const Matrix<double> expected = start + 0.5 * (a_prev.transpose() * delta);
  EXPECT_EIGEN_NEAR(dW, expected, 1e-14);
  EXPECT_NEAR(sum_sq, expected.squaredNorm(), 1e-12 * expected.squaredNorm());

  Matrix<double> overwritten(13, 3 * P);
  weight_gradient(a_prev, delta, 0.5, overwritten);
  dW.setZero();
  chainrule::weight_gradient<double>(a_prev, delta, 0.5, map, true);
  EXPECT_EIGEN_NEAR(dW, overwritten, 0.0);
}

TEST_F(SmallBatchThreads, WeightGradientGivesTheSameBitsOnOneAndTwoThreads) {
  const Index P = kPacket<float>;
  const Matrix<float> a_prev = random_matrix(32, 784, 22).cast<float>();
  const Matrix<float> delta = random_matrix(32, 32 * P, 23).cast<float>();  // several row blocks
  std::vector<Matrix<float>> dW;
  std::vector<float> sum_sq;
  for (int threads : {1, 2}) {
    chainrule::set_num_threads(threads);
    Matrix<float> out(784, 32 * P);
    sum_sq.push_back(weight_gradient(a_prev, delta, 1.0f / 32, out));
    dW.push_back(out);
  }
  EXPECT_EIGEN_NEAR(dW[1], dW[0], 0.0f);
  EXPECT_EQ(sum_sq[1], sum_sq[0]);
}

TEST(WeightGradient, NonFiniteGradientGivesANonFiniteSum) {
  const Index P = kPacket<double>;
  Matrix<double> delta = random_matrix(8, 2 * P, 24);
  Matrix<double> dW(50, 2 * P);
  delta(3, 1) = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(std::isinf(weight_gradient(random_matrix(8, 50, 25), delta, 0.125, dW)));
  delta(3, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(weight_gradient(random_matrix(8, 50, 25), delta, 0.125, dW)));
}

// A net whose hidden widths are whole packets at every level, at a batch the kernels take: in
// the x86-64-v3 build its training step runs both kernels and takes the gradient norm from
// them. The generic path (zero, accumulate, norm pass) is the reference.
TEST(SmallBatchTraining, StepMatchesTheGenericGradientAndNorm) {
  using chainrule::Activation;
  for (double l2 : {0.0, 0.01}) {  // with coupled L2 the norm is taken afresh
    SCOPED_TRACE(::testing::Message() << "l2 " << l2);
    Net net({24, 32, 16, 3}, {Activation::relu, Activation::tanh, Activation::softmax},
            chainrule::Loss::cross_entropy);
    randomize(net, 30, 0.3);
    const Matrix<double> x = random_matrix(20, 24, 31);
    std::vector<std::int32_t> labels(20);
    for (Index i = 0; i < 20; ++i) labels[std::size_t(i)] = std::int32_t(i % 3);
    const Vec g = batch_gradient(net, x, label_targets(labels));
    const Vec before = params_of(net);

    chainrule::StepOptions options;
    options.lr = 0.1;
    options.l2 = l2;
    chainrule::TrainStats stats;
    net.train_step(x, label_targets(labels), options, stats);
    Vec expected_g = g;
    for (std::size_t l = 0; l < net.n_layers(); ++l) {
      const Index at = net.w_offset(l), count = net.sizes()[l] * net.sizes()[l + 1];
      expected_g.segment(at, count) += l2 * before.segment(at, count);
    }
    EXPECT_EIGEN_NEAR(grads_of(net), expected_g, 1e-14);
    EXPECT_NEAR(stats.grad_norm, expected_g.norm(), 1e-13);
    EXPECT_EIGEN_NEAR(params_of(net), (before - 0.1 * expected_g).eval(), 1e-14);
  }
}

}  // namespace
