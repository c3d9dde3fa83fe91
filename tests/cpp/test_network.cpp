// The network: parameter layout, forward pass, backpropagated gradients and workspaces.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eigen_near.hpp"
#include "network_helpers.hpp"

namespace {

using chainrule::Activation;
using chainrule::Index;
using chainrule::Loss;
using chainrule::LossResult;
using chainrule::Matrix;
using chainrule::StepOptions;
using chainrule::Targets;
using chainrule::TrainStats;
using chainrule::Workspace;
using namespace chainrule_test;

TEST(NetworkLayout, OffsetsAndViewsFollowTheFlatBuffer) {
  Net net({3, 4, 2}, {Activation::tanh, Activation::sigmoid}, Loss::mse);
  EXPECT_EQ(net.n_layers(), 2u);
  EXPECT_EQ(net.n_inputs(), 3);
  EXPECT_EQ(net.n_outputs(), 2);
  // [W0 (3×4) | b0 (4) | W1 (4×2) | b1 (2)]
  EXPECT_EQ(net.w_offset(0), 0);
  EXPECT_EQ(net.b_offset(0), 12);
  EXPECT_EQ(net.w_offset(1), 16);
  EXPECT_EQ(net.b_offset(1), 24);
  EXPECT_EQ(net.n_params(), 26);
  EXPECT_EIGEN_NEAR(params_of(net), Vec::Zero(26), 0.0);
  EXPECT_EIGEN_NEAR(grads_of(net), Vec::Zero(26), 0.0);

  for (Index i = 0; i < net.n_params(); ++i) {
    net.params()[i] = double(i);
    net.grads()[i] = -double(i);
  }
  // W is row-major (in, out): W(l)(i, j) sits at w_offset + i·out + j.
  const Matrix<double> W0{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}};
  const Matrix<double> W1{{16, 17}, {18, 19}, {20, 21}, {22, 23}};
  const Matrix<double> b0{{12, 13, 14, 15}};
  const Matrix<double> b1{{24, 25}};
  EXPECT_EIGEN_NEAR(net.W(0), W0, 0.0);
  EXPECT_EIGEN_NEAR(net.b(0), b0, 0.0);
  EXPECT_EIGEN_NEAR(net.W(1), W1, 0.0);
  EXPECT_EIGEN_NEAR(net.b(1), b1, 0.0);
  EXPECT_EIGEN_NEAR(net.dW(1), -W1, 0.0);
  EXPECT_EIGEN_NEAR(net.db(0), -b0, 0.0);
  net.zero_grad();
  EXPECT_EIGEN_NEAR(grads_of(net), Vec::Zero(26), 0.0);
}

TEST(NetworkLayout, ConstructorRejectsInvalidArchitectures) {
  using A = Activation;
  EXPECT_THROW(Net({3}, {}, Loss::mse), std::invalid_argument);
  EXPECT_THROW(Net({3, 2}, {A::tanh, A::tanh}, Loss::mse), std::invalid_argument);
  EXPECT_THROW(Net({3, 0, 2}, {A::tanh, A::tanh}, Loss::mse), std::invalid_argument);
  EXPECT_THROW(Net({3, 4, 2}, {A::softmax, A::softmax}, Loss::cross_entropy),
               std::invalid_argument);
  EXPECT_THROW(Net({3, 4, 2}, {A::tanh, A::sigmoid}, Loss::cross_entropy), std::invalid_argument);
  EXPECT_THROW(Net({3, 4, 2}, {A::tanh, A::softmax}, Loss::binary_cross_entropy),
               std::invalid_argument);
  EXPECT_NO_THROW(Net({3, 4, 2}, {A::relu, A::softmax}, Loss::cross_entropy));
}

TEST(NetworkForward, WorkspaceHoldsEveryLayer) {
  Net net({3, 5, 4, 2}, {Activation::relu, Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 1);
  const Matrix<double> x = random_matrix(6, 3, 2);
  Workspace<double> ws;
  net.forward(x, ws, false);
  ASSERT_EQ(ws.capacity, 6);
  ASSERT_EQ(ws.a.size(), 3u);
  const std::vector<Index> widths{5, 4, 2};
  for (std::size_t l = 0; l < 3; ++l) {
    EXPECT_EQ(ws.z[l].rows(), 6);
    EXPECT_EQ(ws.z[l].cols(), widths[l]);
    EXPECT_EQ(ws.a[l].cols(), widths[l]);
    EXPECT_EQ(ws.delta[l].cols(), widths[l]);
  }
  // The same computation written out layer by layer.
  Matrix<double> z0 = x * net.W(0);
  z0.rowwise() += net.b(0);
  const Matrix<double> a0 = z0.cwiseMax(0.0);
  Matrix<double> z1 = a0 * net.W(1);
  z1.rowwise() += net.b(1);
  const Matrix<double> a1 = z1.array().tanh().matrix();
  Matrix<double> a2 = a1 * net.W(2);
  a2.rowwise() += net.b(2);
  EXPECT_EIGEN_NEAR(ws.a[0], a0, 1e-14);
  EXPECT_EIGEN_NEAR(ws.a[1], a1, 1e-14);
  EXPECT_EIGEN_NEAR(ws.a[2], a2, 1e-14);
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

TEST(NetworkGradient, ChainOfSingleNeuronsIsTheChainRuleProduct) {
  Net net({1, 1, 1}, {Activation::sigmoid, Activation::sigmoid}, Loss::mse);
  const double w1 = 0.8, b1 = -0.3, w2 = -1.2, b2 = 0.5, x = 1.5, y = 0.2;
  double* p = net.params();  // layout [w1, b1, w2, b2]
  p[0] = w1, p[1] = b1, p[2] = w2, p[3] = b2;

  // By hand: z1 = w1·x + b1, a1 = σ(z1), z2 = w2·a1 + b2, a2 = σ(z2), C = (a2 − y)².
  const double z1 = w1 * x + b1, a1 = sigmoid(z1);
  const double z2 = w2 * a1 + b2, a2 = sigmoid(z2);
  const double dC_da2 = 2 * (a2 - y);
  const double dC_db2 = dC_da2 * a2 * (1 - a2);  // ∂C/∂z2 = 2(a2 − y)·σ'(z2)
  const double dC_dw2 = a1 * dC_db2;             // ∂z2/∂w2 = a1
  const double dC_db1 = dC_db2 * w2 * a1 * (1 - a1);  // ∂z2/∂a1 = w2, ∂a1/∂z1 = σ'(z1)
  const double dC_dw1 = x * dC_db1;                   // ∂z1/∂w1 = x
  const Vec expected{{dC_dw1, dC_db1, dC_dw2, dC_db2}};

  const Matrix<double> X{{x}};
  const Matrix<double> Y{{y}};
  Workspace<double> ws;
  net.zero_grad();
  const auto result = net.accumulate_gradients(X, value_targets(Y), ws, 1.0, false);
  EXPECT_NEAR(result.loss_sum, (a2 - y) * (a2 - y), 1e-15);
  EXPECT_EIGEN_NEAR(grads_of(net), expected, 1e-15);
  // The output error of this sample, as stored in the workspace.
  EXPECT_NEAR(ws.delta[1](0, 0), dC_db2, 1e-15);
  EXPECT_NEAR(ws.delta[0](0, 0), dC_db1, 1e-15);
}

struct FdCase {
  std::string name;
  std::vector<Activation> acts;
  Loss loss;
};

// Central differences of the mean cost, in double, for every parameter of a 3-layer net.
TEST(NetworkGradient, MatchesFiniteDifferencesForEveryParameter) {
  using A = Activation;
  const std::vector<FdCase> cases = {
      {"tanh-sigmoid-softmax / cross_entropy", {A::tanh, A::sigmoid, A::softmax},
       Loss::cross_entropy},
      {"leaky-tanh-identity / mse", {A::leaky_relu, A::tanh, A::identity}, Loss::mse},
      {"sigmoid-relu-sigmoid / bce", {A::sigmoid, A::relu, A::sigmoid},
       Loss::binary_cross_entropy},
      {"tanh-tanh-softmax / mse", {A::tanh, A::tanh, A::softmax}, Loss::mse},
  };
  const Index B = 4;
  const Matrix<double> x = random_matrix(B, 3, 100, 2.0);
  const std::vector<std::int32_t> labels{2, 0, 1, 2};
  const Matrix<double> soft{{0.1, 0.7, 0.2}, {1.0, 0.0, 0.0}, {0.3, 0.3, 0.4}, {0.0, 0.5, 0.5}};
  const double h = 1e-6;
  for (const FdCase& c : cases) {
    SCOPED_TRACE(c.name);
    Net net({3, 5, 4, 3}, c.acts, c.loss, 0.1);
    randomize(net, 7);
    const Targets<double> y = c.loss == Loss::cross_entropy ? label_targets(labels)
                                                            : value_targets(soft);
    const Vec backprop = batch_gradient(net, x, y);
    Vec numeric(net.n_params());
    for (Index i = 0; i < net.n_params(); ++i) {
      const double saved = net.params()[i];
      net.params()[i] = saved + h;
      const double up = mean_loss(net, x, y);
      net.params()[i] = saved - h;
      const double down = mean_loss(net, x, y);
      net.params()[i] = saved;
      numeric[i] = (up - down) / (2 * h);
    }
    EXPECT_GT(backprop.norm(), 1e-3);  // a zero gradient would pass trivially
    EXPECT_EIGEN_NEAR(backprop, numeric, 1e-8);
  }
}

TEST(NetworkGradient, InputGradientMatchesFiniteDifferences) {
  Net net({3, 4, 2}, {Activation::tanh, Activation::softmax}, Loss::cross_entropy);
  randomize(net, 3);
  const Matrix<double> x = random_matrix(2, 3, 4);
  const std::vector<std::int32_t> labels{1, 0};
  const Targets<double> y = label_targets(labels);
  Workspace<double> ws;
  Matrix<double> dx(2, 3);
  chainrule::MatrixRef<double> dx_ref(dx);
  net.zero_grad();
  net.accumulate_gradients(x, y, ws, 0.5, false, &dx_ref);
  // dx holds ∂C_k/∂x_k per sample (not scaled by the batch mean).
  const double h = 1e-6;
  Matrix<double> numeric(2, 3);
  for (Index r = 0; r < 2; ++r)
    for (Index j = 0; j < 3; ++j) {
      Matrix<double> xp = x, xm = x;
      xp(r, j) += h;
      xm(r, j) -= h;
      numeric(r, j) = 2 * (mean_loss(net, xp, y) - mean_loss(net, xm, y)) / (2 * h);
    }
  EXPECT_EIGEN_NEAR(dx, numeric, 1e-8);
}

TEST(NetworkGradient, DeltasAloneMatchTheFullBackwardPassAndLeaveTheGradientsAlone) {
  Net net({3, 4, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 5);
  const Matrix<double> x = random_matrix(3, 3, 6);
  const Matrix<double> y = random_matrix(3, 2, 7);
  Workspace<double> full, deltas;
  net.zero_grad();
  net.accumulate_gradients(x, value_targets(y), full, 1.0, false);
  const Vec grads = grads_of(net);
  net.forward(x, deltas, false);
  net.output_delta(value_targets(y), deltas, x.rows());
  net.backward_deltas(x.rows(), deltas);
  for (std::size_t l = 0; l < net.n_layers(); ++l)
    EXPECT_EIGEN_NEAR(deltas.delta[l].topRows(3), full.delta[l].topRows(3), 0.0);
  EXPECT_EIGEN_NEAR(grads_of(net), grads, 0.0);
  // A δ that is not finite stays out of the gradients too (weights of 1e200: δ·Wᵀ overflows
  // to inf and meets tanh' = 0 in the hidden layer); backward with scale 0 had added 0·NaN.
  for (Index i = 0; i < net.n_params(); ++i) net.params()[i] = 1e200;
  net.forward(x, deltas, false);
  net.output_delta(value_targets(y), deltas, x.rows());
  net.backward_deltas(x.rows(), deltas);
  EXPECT_FALSE(deltas.delta[0].topRows(3).allFinite());
  EXPECT_EIGEN_NEAR(grads_of(net), grads, 0.0);
}

TEST(NetworkGradient, BatchGradientIsTheMeanOfPerSampleGradients) {
  Net net({2, 3, 2}, {Activation::tanh, Activation::identity}, Loss::mse);
  randomize(net, 11);
  const Matrix<double> x = random_matrix(5, 2, 12);
  const Matrix<double> y = random_matrix(5, 2, 13);
  const Vec batch = batch_gradient(net, x, value_targets(y));
  Vec mean = Vec::Zero(net.n_params());
  for (Index k = 0; k < x.rows(); ++k) {
    const Matrix<double> xk = x.row(k), yk = y.row(k);
    mean += batch_gradient(net, xk, value_targets(yk)) / double(x.rows());
  }
  EXPECT_EIGEN_NEAR(batch, mean, 1e-14);
}

TEST(NetworkGradient, FloatNetworkAgreesWithDouble) {
  const std::vector<Activation> acts{Activation::sigmoid, Activation::softmax};
  Net net({3, 4, 3}, acts, Loss::cross_entropy);
  chainrule::Network<float> net_f({3, 4, 3}, acts, Loss::cross_entropy);
  randomize(net, 5);
  randomize(net_f, 5);
  const Matrix<double> x = random_matrix(4, 3, 6);
  const Matrix<float> x_f = x.cast<float>();
  const std::vector<std::int32_t> labels{0, 1, 2, 1};
  const Vec g = batch_gradient(net, x, label_targets(labels));
  chainrule::Targets<float> y_f;
  y_f.labels = labels.data();
  Workspace<float> ws;
  net_f.zero_grad();
  net_f.accumulate_gradients(x_f, y_f, ws, 0.25f, false);
  EXPECT_EIGEN_NEAR(grads_of(net_f), g, 1e-6);
}

TEST(NetworkWorkspace, SmallerBatchAfterALargerOneReusesTheWorkspace) {
  Net net({3, 5, 2}, {Activation::tanh, Activation::sigmoid}, Loss::binary_cross_entropy);
  randomize(net, 90);
  const Matrix<double> big_x = random_matrix(6, 3, 91);
  const Matrix<double> small_x = random_matrix(2, 3, 92);
  const Matrix<double> small_y{{1.0, 0.0}, {0.0, 1.0}};
  const Matrix<double> big_y = (random_matrix(6, 2, 93).array() > 0).cast<double>();

  Workspace<double> reused;
  net.zero_grad();
  net.accumulate_gradients(big_x, value_targets(big_y), reused, 1.0 / 6, false);
  ASSERT_EQ(reused.capacity, 6);
  net.zero_grad();
  const auto reused_result =
      net.accumulate_gradients(small_x, value_targets(small_y), reused, 0.5, false);
  EXPECT_EQ(reused.capacity, 6);  // no reallocation for the smaller batch
  const Vec reused_grad = grads_of(net);

  Workspace<double> fresh;
  net.zero_grad();
  const auto fresh_result =
      net.accumulate_gradients(small_x, value_targets(small_y), fresh, 0.5, false);
  EXPECT_EQ(fresh.capacity, 2);
  EXPECT_EIGEN_NEAR(reused_grad, grads_of(net), 0.0);
  EXPECT_EQ(reused_result.loss_sum, fresh_result.loss_sum);
  EXPECT_EIGEN_NEAR(reused.a[1].topRows(2), fresh.a[1], 0.0);

  // The same through train_step's own workspace.
  Net a({3, 5, 2}, {Activation::tanh, Activation::sigmoid}, Loss::binary_cross_entropy);
  Net b({3, 5, 2}, {Activation::tanh, Activation::sigmoid}, Loss::binary_cross_entropy);
  randomize(a, 90);
  randomize(b, 90);
  StepOptions options;
  TrainStats sa, sb;
  a.train_step(big_x, value_targets(big_y), options, sa);
  b.train_step(big_x, value_targets(big_y), options, sb);
  a.train_step(small_x, value_targets(small_y), options, sa);
  b.train_workspace() = Workspace<double>();  // b starts the small batch with a new workspace
  b.train_step(small_x, value_targets(small_y), options, sb);
  EXPECT_EQ(a.train_workspace().capacity, 6);
  EXPECT_EQ(b.train_workspace().capacity, 2);
  EXPECT_EIGEN_NEAR(params_of(a), params_of(b), 0.0);
}

// predict computes each layer's a in place, in chunks; forward keeps z and a apart, in one go.
TEST(NetworkPredict, MatchesTheEvalForwardPassAcrossChunksForEveryActivation) {
  const Index rows = 2 * Net::kInferenceChunk + 37;  // two full chunks and a partial one
  const Matrix<double> x = random_matrix(rows, 4, 101);
  for (Activation hidden : {Activation::identity, Activation::sigmoid, Activation::tanh,
                            Activation::relu, Activation::leaky_relu}) {
    for (auto [output, loss] : {std::pair{Activation::softmax, Loss::cross_entropy},
                                std::pair{Activation::sigmoid, Loss::binary_cross_entropy},
                                std::pair{Activation::identity, Loss::mse}}) {
      SCOPED_TRACE(std::string(activation_name(hidden)) + " then " + activation_name(output));
      Net net({4, 6, 5, 3}, {hidden, hidden, output}, loss);
      randomize(net, 100);
      Matrix<double> out(rows, 3);
      net.predict(x, out);
      Workspace<double> ws;
      net.forward(x, ws, false);
      EXPECT_EIGEN_NEAR(out, ws.a[2], 1e-14);
    }
  }
}

// Layers large enough for the packed kernel (in the x86-64-v4 build), whose epilogue adds b and
// applies relu as it stores: the same bits in place (predict) as into separate z and a.
TEST(NetworkPredict, KernelSizedLayersGiveTheSameBitsAsTheTrainingForwardPass) {
  const Index rows = Net::kInferenceChunk + 77;
  const Matrix<double> x = random_matrix(rows, 64, 104);
  for (Activation hidden : {Activation::relu, Activation::tanh}) {
    SCOPED_TRACE(activation_name(hidden));
    Net net({64, 64, 48, 10}, {hidden, hidden, Activation::softmax}, Loss::cross_entropy);
    randomize(net, 105, 0.2);
    Matrix<double> out(rows, 10);
    net.predict(x, out);
    Workspace<double> ws;
    net.forward(x, ws, true);  // training's forward pass (no dropout set): z and a kept apart
    EXPECT_EIGEN_NEAR(out, ws.a[2], 0.0);
    if (hidden == Activation::relu) {
      EXPECT_EIGEN_NEAR(ws.a[0], ws.z[0].cwiseMax(0.0).eval(), 0.0);
    }
  }
}

// evaluate sums the cost over chunks; compare with one forward pass over all rows.
TEST(NetworkEvaluate, MatchesOneForwardPassAcrossChunks) {
  const Index rows = Net::kInferenceChunk + 100;
  const Matrix<double> x = random_matrix(rows, 4, 102);
  std::vector<std::int32_t> labels(rows);
  for (Index i = 0; i < rows; ++i) labels[i] = std::int32_t((i * 7) % 3);
  Net net({4, 6, 3}, {Activation::relu, Activation::softmax}, Loss::cross_entropy);
  randomize(net, 103);
  const LossResult<double> chunked = net.evaluate(x, label_targets(labels));
  Workspace<double> ws;
  net.forward(x, ws, false);
  const LossResult<double> whole = net.output_delta(label_targets(labels), ws, rows);
  EXPECT_NEAR(chunked.loss_sum, whole.loss_sum, 1e-12 * rows);
  EXPECT_EQ(chunked.n_correct, whole.n_correct);
  EXPECT_GT(whole.n_correct, 0);
  EXPECT_LT(whole.n_correct, rows);
}

}  // namespace
