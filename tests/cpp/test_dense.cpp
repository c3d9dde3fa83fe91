// One dense layer: z = a_prev·W + b forward; dW, db (accumulated) and d_a_prev backward.
#include <cstdint>

#include "chainrule/dense.hpp"
#include "chainrule/random.hpp"
#include "eigen_near.hpp"

namespace {

using chainrule::Activation;
using chainrule::ConstMatrixMap;
using chainrule::ConstRowVectorMap;
using chainrule::Index;
using chainrule::Matrix;
using chainrule::MatrixMap;
using chainrule::RowVector;
using chainrule::RowVectorMap;

constexpr double kTol = 1e-14;

// A 2-sample batch of 2 inputs into 3 neurons.
const Matrix<double> kAPrev{{1.0, 2.0}, {3.0, -1.0}};
const Matrix<double> kW{{0.5, -1.0, 2.0}, {1.0, 0.0, -0.5}};
const RowVector<double> kB{{0.1, 0.2, 0.3}};
const Matrix<double> kDelta{{1.0, 0.0, -1.0}, {2.0, 1.0, 0.0}};

// Parameters and their gradients the way the network stores them: maps onto flat buffers.
struct Layer {
  Matrix<double> W;
  RowVector<double> b;
  Matrix<double> dW;
  RowVector<double> db;
  Layer(const Matrix<double>& W_, const RowVector<double>& b_)
      : W(W_), b(b_), dW(Matrix<double>::Zero(W_.rows(), W_.cols())),
        db(RowVector<double>::Zero(b_.size())) {}

  void forward(const Matrix<double>& a_prev, Activation act, Matrix<double>& z,
               Matrix<double>& a) const {
    z.resize(a_prev.rows(), W.cols());
    a.resize(a_prev.rows(), W.cols());
    chainrule::dense_forward<double>(a_prev, ConstMatrixMap<double>(W.data(), W.rows(), W.cols()),
                                     ConstRowVectorMap<double>(b.data(), b.size()), act, 0.01, z,
                                     a);
  }
  void backward_params(const Matrix<double>& a_prev, const Matrix<double>& delta, double scale) {
    MatrixMap<double> dW_map(dW.data(), dW.rows(), dW.cols());
    RowVectorMap<double> db_map(db.data(), db.size());
    chainrule::dense_backward_params<double>(a_prev, delta, scale, dW_map, db_map);
  }
  Matrix<double> backward_input(const Matrix<double>& delta) const {
    Matrix<double> d_a_prev(delta.rows(), W.rows());
    chainrule::dense_backward_input<double>(
        delta, ConstMatrixMap<double>(W.data(), W.rows(), W.cols()), d_a_prev);
    return d_a_prev;
  }
};

Matrix<double> filled(Index rows, Index cols, std::uint64_t seed) {
  chainrule::SplitMix64 rng(seed);
  Matrix<double> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = 2 * rng.uniform() - 1;
  return m;
}

TEST(DenseForward, ComputesAPrevTimesWPlusBias) {
  const Layer layer(kW, kB);
  Matrix<double> z, a;
  layer.forward(kAPrev, Activation::identity, z, a);
  // Row 0: (1·0.5 + 2·1, −1, 1·2 − 2·0.5) + b;  row 1: (1.5 − 1, −3, 6 + 0.5) + b.
  const Matrix<double> expected{{2.6, -0.8, 1.3}, {0.6, -2.8, 6.8}};
  EXPECT_EQ(z.rows(), 2);
  EXPECT_EQ(z.cols(), 3);
  EXPECT_EIGEN_NEAR(z, expected, kTol);
  EXPECT_EIGEN_NEAR(a, expected, kTol);

  layer.forward(kAPrev, Activation::relu, z, a);
  const Matrix<double> relu{{2.6, 0.0, 1.3}, {0.6, 0.0, 6.8}};
  EXPECT_EIGEN_NEAR(z, expected, kTol);
  EXPECT_EIGEN_NEAR(a, relu, kTol);
}

TEST(DenseForward, EachRowIsItsOwnSample) {
  const Matrix<double> W = filled(4, 3, 1);
  const RowVector<double> b = filled(1, 3, 2);
  const Layer layer(W, b);
  const Matrix<double> x = filled(5, 4, 3);
  Matrix<double> z, a;
  layer.forward(x, Activation::tanh, z, a);
  ASSERT_EQ(a.rows(), 5);
  ASSERT_EQ(a.cols(), 3);
  for (Index r = 0; r < x.rows(); ++r) {
    Matrix<double> z1, a1;
    layer.forward(x.row(r), Activation::tanh, z1, a1);
    EXPECT_EIGEN_NEAR(a.row(r), a1, kTol) << "row " << r;
  }
}

TEST(DenseBackward, ParamsAndInputGradientsByHand) {
  Layer layer(kW, kB);
  layer.backward_params(kAPrev, kDelta, 0.5);
  // dW = 0.5·a_prevᵀ·δ: input 0 sees 1·δ_0 + 3·δ_1 = (7, 3, −1),
  //                     input 1 sees 2·δ_0 − 1·δ_1 = (0, −1, −2).
  const Matrix<double> dW{{3.5, 1.5, -0.5}, {0.0, -0.5, -1.0}};
  const RowVector<double> db{{1.5, 0.5, -0.5}};  // 0.5·Σ_k δ_k = 0.5·(3, 1, −1)
  EXPECT_EIGEN_NEAR(layer.dW, dW, kTol);
  EXPECT_EIGEN_NEAR(layer.db, db, kTol);
  // d_a_prev = δ·Wᵀ: (1·0.5 − 1·2, 1·1 − 1·(−0.5)) and (2·0.5 − 1, 2·1).
  const Matrix<double> d_a_prev{{-1.5, 1.5}, {0.0, 2.0}};
  EXPECT_EIGEN_NEAR(layer.backward_input(kDelta), d_a_prev, kTol);
}

TEST(DenseBackward, ParamGradientsAccumulate) {
  Layer layer(kW, kB);
  layer.dW.setZero();
  layer.db.setZero();
  layer.backward_params(kAPrev, kDelta, 0.5);
  layer.backward_params(kAPrev, kDelta, 0.5);
  const Matrix<double> dW{{7.0, 3.0, -1.0}, {0.0, -1.0, -2.0}};
  const RowVector<double> db{{3.0, 1.0, -1.0}};
  EXPECT_EIGEN_NEAR(layer.dW, dW, kTol);
  EXPECT_EIGEN_NEAR(layer.db, db, kTol);

  // Adding onto a non-zero buffer keeps what was there.
  layer.dW.setConstant(1.0);
  layer.db.setConstant(-2.0);
  layer.backward_params(kAPrev, kDelta, 0.5);
  const Matrix<double> dW_plus_one{{4.5, 2.5, 0.5}, {1.0, 0.5, 0.0}};
  const RowVector<double> db_minus_two{{-0.5, -1.5, -2.5}};
  EXPECT_EIGEN_NEAR(layer.dW, dW_plus_one, kTol);
  EXPECT_EIGEN_NEAR(layer.db, db_minus_two, kTol);
}

TEST(DenseBackward, MicroBatchesAddUpToTheFullBatch) {
  const Index n = 6;
  const Matrix<double> x = filled(n, 4, 10);
  const Matrix<double> delta = filled(n, 3, 11);
  const double scale = 1.0 / n;

  Layer full(filled(4, 3, 12), filled(1, 3, 13));
  full.backward_params(x, delta, scale);

  Layer halves = full;
  halves.dW.setZero();
  halves.db.setZero();
  halves.backward_params(x.topRows(3), delta.topRows(3), scale);
  halves.backward_params(x.bottomRows(3), delta.bottomRows(3), scale);
  EXPECT_EIGEN_NEAR(halves.dW, full.dW, kTol);
  EXPECT_EIGEN_NEAR(halves.db, full.db, kTol);

  // Uneven pieces (1 + 2 + 3 samples) give the same sum too.
  Layer pieces = full;
  pieces.dW.setZero();
  pieces.db.setZero();
  pieces.backward_params(x.middleRows(0, 1), delta.middleRows(0, 1), scale);
  pieces.backward_params(x.middleRows(1, 2), delta.middleRows(1, 2), scale);
  pieces.backward_params(x.middleRows(3, 3), delta.middleRows(3, 3), scale);
  EXPECT_EIGEN_NEAR(pieces.dW, full.dW, kTol);
  EXPECT_EIGEN_NEAR(pieces.db, full.db, kTol);
}

}  // namespace
