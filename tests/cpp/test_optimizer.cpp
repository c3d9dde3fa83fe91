// Optimizers against an independent scalar reference: the update rules as PyTorch documents them
// for torch.optim (SGD, Adam, AdamW, RMSprop, Adagrad), written out one element at a time.
#include <cmath>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "chainrule/optimizer.hpp"
#include "chainrule/threads.hpp"
#include "eigen_near.hpp"

namespace {

using chainrule::Index;
using chainrule::Optimizer;
using chainrule::OptimizerConfig;
using chainrule::OptimizerKind;
using Vec = Eigen::VectorXd;

// The reference keeps its own state and reads only the documented hyper-parameters.
class Reference {
 public:
  Reference(const OptimizerConfig& c, const std::vector<double>& params)
      : c_(c), theta_(params), b_(params.size(), 0.0), m_(params.size(), 0.0),
        v_(params.size(), 0.0), g_ave_(params.size(), 0.0),
        sum_(params.size(), c.initial_accumulator_value) {}

  const std::vector<double>& params() const { return theta_; }

  void step(const std::vector<double>& grads, double lr) {
    ++t_;
    for (std::size_t i = 0; i < theta_.size(); ++i) {
      switch (c_.kind) {
        case OptimizerKind::sgd: sgd(i, grads[i], lr); break;
        case OptimizerKind::adam: adam(i, grads[i], lr, false); break;
        case OptimizerKind::adamw: adam(i, grads[i], lr, true); break;
        case OptimizerKind::rmsprop: rmsprop(i, grads[i], lr); break;
        case OptimizerKind::adagrad: adagrad(i, grads[i], lr); break;
      }
    }
  }

 private:
  void sgd(std::size_t i, double g, double lr) {
    double& theta = theta_[i];
    if (c_.weight_decay != 0) g = g + c_.weight_decay * theta;
    if (c_.momentum != 0) {
      double& b = b_[i];
      if (t_ > 1)
        b = c_.momentum * b + (1 - c_.dampening) * g;
      else
        b = g;
      if (c_.nesterov)
        g = g + c_.momentum * b;
      else
        g = b;
    }
    theta = theta - lr * g;
  }

  void adam(std::size_t i, double g, double lr, bool adamw) {
    double& theta = theta_[i];
    if (adamw)
      theta = theta - lr * c_.weight_decay * theta;
    else if (c_.weight_decay != 0)
      g = g + c_.weight_decay * theta;
    double& m = m_[i];
    double& v = v_[i];
    m = c_.beta1 * m + (1 - c_.beta1) * g;
    v = c_.beta2 * v + (1 - c_.beta2) * g * g;
    const double m_hat = m / (1 - std::pow(c_.beta1, t_));
    const double v_hat = v / (1 - std::pow(c_.beta2, t_));
    theta = theta - lr * m_hat / (std::sqrt(v_hat) + c_.eps);
  }

  void rmsprop(std::size_t i, double g, double lr) {
    double& theta = theta_[i];
    if (c_.weight_decay != 0) g = g + c_.weight_decay * theta;
    double& v = v_[i];
    v = c_.alpha * v + (1 - c_.alpha) * g * g;
    double v_tilde = v;
    if (c_.centered) {
      double& g_ave = g_ave_[i];
      g_ave = c_.alpha * g_ave + (1 - c_.alpha) * g;
      v_tilde = v_tilde - g_ave * g_ave;
    }
    if (c_.momentum > 0) {
      double& b = b_[i];
      b = c_.momentum * b + g / (std::sqrt(v_tilde) + c_.eps);
      theta = theta - lr * b;
    } else {
      theta = theta - lr * g / (std::sqrt(v_tilde) + c_.eps);
    }
  }

  void adagrad(std::size_t i, double g, double lr) {
    double& theta = theta_[i];
    const double lr_t = lr / (1 + (t_ - 1) * c_.lr_decay);
    if (c_.weight_decay != 0) g = g + c_.weight_decay * theta;
    sum_[i] = sum_[i] + g * g;
    theta = theta - lr_t * g / (std::sqrt(sum_[i]) + c_.eps);
  }

  OptimizerConfig c_;
  int t_ = 0;
  std::vector<double> theta_, b_, m_, v_, g_ave_, sum_;
};

const std::vector<double> kStart{0.5, -1.0, 2.0};
const std::vector<std::vector<double>> kGrads{
    {0.1, -0.2, 0.3}, {-0.4, 0.05, 0.2}, {0.3, 0.3, -0.1}};
const std::vector<double> kLr{0.1, 0.05, 0.1};  // the learning rate may change between steps

Vec to_vec(const std::vector<double>& v) {
  return Eigen::Map<const Vec>(v.data(), Eigen::Index(v.size()));
}

struct OptimizerCase {
  std::string name;
  OptimizerConfig config;
};
void PrintTo(const OptimizerCase& c, std::ostream* os) { *os << c.name; }  // for gtest messages

OptimizerConfig make(OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  return c;
}

std::vector<OptimizerCase> optimizer_cases() {
  std::vector<OptimizerCase> cases;
  auto add = [&](std::string name, OptimizerConfig c) { cases.push_back({std::move(name), c}); };

  add("sgd", make(OptimizerKind::sgd));
  OptimizerConfig c = make(OptimizerKind::sgd);
  c.weight_decay = 0.1;
  add("sgd_weight_decay", c);
  c = make(OptimizerKind::sgd);
  c.momentum = 0.9;
  add("sgd_momentum", c);
  c.dampening = 0.2;
  c.weight_decay = 0.05;
  add("sgd_momentum_dampening_weight_decay", c);
  c = make(OptimizerKind::sgd);
  c.momentum = 0.8;
  c.nesterov = true;
  add("sgd_nesterov", c);

  add("adam", make(OptimizerKind::adam));
  c = make(OptimizerKind::adam);
  c.beta1 = 0.8, c.beta2 = 0.99, c.eps = 1e-6, c.weight_decay = 0.1;
  add("adam_betas_eps_weight_decay", c);
  c = make(OptimizerKind::adamw);
  c.weight_decay = 0.1;
  add("adamw", c);

  c = make(OptimizerKind::rmsprop);
  c.alpha = 0.9;
  add("rmsprop", c);
  c.momentum = 0.5;
  add("rmsprop_momentum", c);
  c = make(OptimizerKind::rmsprop);
  c.centered = true;
  add("rmsprop_centered", c);
  c.momentum = 0.7, c.alpha = 0.8, c.weight_decay = 0.01;
  add("rmsprop_centered_momentum_weight_decay", c);

  c = make(OptimizerKind::adagrad);
  c.lr_decay = 0.1;
  add("adagrad_lr_decay", c);
  c.lr_decay = 0.05, c.initial_accumulator_value = 0.5, c.eps = 1e-10, c.weight_decay = 0.02;
  add("adagrad_initial_accumulator_weight_decay", c);
  return cases;
}

class OptimizerRule : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(OptimizerRule, MatchesTheDocumentedUpdateStepByStep) {
  const OptimizerConfig& config = GetParam().config;
  Optimizer<double> opt(config, 3);
  Reference ref(config, kStart);
  Vec params = to_vec(kStart);
  for (std::size_t t = 0; t < kGrads.size(); ++t) {
    SCOPED_TRACE("step " + std::to_string(t + 1));
    const Vec g = to_vec(kGrads[t]);
    opt.step(params.data(), g.data(), 3, kLr[t]);
    ref.step(kGrads[t], kLr[t]);
    EXPECT_EQ(opt.step_count(), std::int64_t(t + 1));
    ASSERT_EIGEN_NEAR(params, to_vec(ref.params()), 1e-12);
  }
  EXPECT_GT((params - to_vec(kStart)).norm(), 1e-3);  // the parameters did move
}

TEST_P(OptimizerRule, FloatFollowsTheDoubleReference) {
  const OptimizerConfig& config = GetParam().config;
  Optimizer<float> opt(config, 3);
  Reference ref(config, kStart);
  Eigen::VectorXf params = to_vec(kStart).cast<float>();
  for (std::size_t t = 0; t < kGrads.size(); ++t) {
    const Eigen::VectorXf g = to_vec(kGrads[t]).cast<float>();
    opt.step(params.data(), g.data(), 3, float(kLr[t]));
    ref.step(kGrads[t], kLr[t]);
  }
  EXPECT_EIGEN_NEAR(params, to_vec(ref.params()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, OptimizerRule, ::testing::ValuesIn(optimizer_cases()),
                         [](const ::testing::TestParamInfo<OptimizerCase>& info) {
                           return info.param.name;
                         });

// A few steps whose results are short enough to write down.
TEST(OptimizerByHand, PlainSgdStep) {
  Optimizer<double> opt(OptimizerConfig{}, 3);
  Vec p{{0.5, -1.0, 2.0}};
  const Vec g{{0.1, -0.2, 0.3}};
  opt.step(p.data(), g.data(), 3, 0.1);
  const Vec expected{{0.49, -0.98, 1.97}};
  EXPECT_EIGEN_NEAR(p, expected, 1e-15);
}

TEST(OptimizerByHand, SgdMomentumSecondStepUsesTheBuffer) {
  OptimizerConfig c;
  c.momentum = 0.9;
  Optimizer<double> opt(c, 1);
  Vec p{{1.0}};
  const Vec g{{1.0}};
  opt.step(p.data(), g.data(), 1, 0.1);  // b = 1:         p = 1 − 0.1
  opt.step(p.data(), g.data(), 1, 0.1);  // b = 0.9 + 1:   p = 0.9 − 0.19
  EXPECT_NEAR(p[0], 0.71, 1e-15);
  EXPECT_NEAR(opt.state1()[0], 1.9, 1e-15);
}

TEST(OptimizerByHand, FirstAdamStepMovesByTheLearningRate) {
  // After bias correction m̂ = g and v̂ = g², so with ε = 0 the first step is lr·sign(g).
  OptimizerConfig c = make(OptimizerKind::adam);
  c.eps = 0;
  Optimizer<double> opt(c, 3);
  Vec p{{0.5, -1.0, 2.0}};
  const Vec g{{0.1, -0.2, 3.0}};
  opt.step(p.data(), g.data(), 3, 0.01);
  const Vec expected{{0.49, -0.99, 1.99}};
  EXPECT_EIGEN_NEAR(p, expected, 1e-15);
}

TEST(OptimizerByHand, AdagradDecaysTheLearningRate) {
  OptimizerConfig c = make(OptimizerKind::adagrad);
  c.lr_decay = 1.0;
  c.eps = 0;
  Optimizer<double> opt(c, 1);
  Vec p{{0.0}};
  const Vec g{{3.0}};
  opt.step(p.data(), g.data(), 1, 1.0);  // sum = 9:  p −= 1·3/3
  opt.step(p.data(), g.data(), 1, 1.0);  // sum = 18: p −= (1/2)·3/√18
  EXPECT_NEAR(p[0], -1.0 - 0.5 * 3.0 / std::sqrt(18.0), 1e-15);
}

#ifdef CHAINRULE_HAS_MXCSR
// A momentum entry whose gradient is zero decays through the subnormal range; the update flushes
// it to zero (no microcode assists), leaves normal values alone and restores the caller's mode.
TEST(OptimizerSubnormals, UpdateFlushesThemAndRestoresTheFloatingPointMode) {
  for (const unsigned caller_mode : {_mm_getcsr(), _mm_getcsr() | 0x8040u}) {
    const unsigned before = _mm_getcsr();
    _mm_setcsr(caller_mode);
    OptimizerConfig c;
    c.momentum = 0.5;
    Optimizer<float> opt(c, 3);
    std::vector<float> params = {1.0f, 1.0f, 1.0f};
    const std::vector<float> first = {2e-38f, 1.0f, 0.0f};  // normal: the least is 1.18e-38
    opt.step(params.data(), first.data(), 3, 0.0f);
    EXPECT_EQ(opt.state1()[0], 2e-38f);
    const std::vector<float> zero = {0.0f, 0.0f, 0.0f};
    opt.step(params.data(), zero.data(), 3, 0.0f);  // 1e-38 would be subnormal
    EXPECT_EQ(opt.state1()[0], 0.0f);
    EXPECT_EQ(opt.state1()[1], 0.5f);
    constexpr unsigned kStatusFlags = 0x3f;  // sticky exception flags, not the mode
    EXPECT_EQ(_mm_getcsr() & ~kStatusFlags, caller_mode & ~kStatusFlags);
    _mm_setcsr(before);
  }
}
#endif

// Large updates are shared by the threads; elementwise, so 1 and 2 threads give the same bits for
// every rule, and both threads flush subnormals (an entry in the second thread's part).
TEST(OptimizerThreads, TwoThreadsGiveTheSameBitsAsOne) {
  const Index n = (1 << 16) + 4099;  // above the parallel threshold, parts not multiples of 16
  std::vector<OptimizerConfig> configs(6);
  configs[0].momentum = 0.5, configs[0].nesterov = true, configs[0].weight_decay = 0.01;
  configs[1].kind = OptimizerKind::adam;
  configs[2].kind = OptimizerKind::adamw, configs[2].weight_decay = 0.1;
  configs[3].kind = OptimizerKind::rmsprop, configs[3].momentum = 0.9;
  configs[3].centered = true;
  configs[4].kind = OptimizerKind::adagrad, configs[4].lr_decay = 0.01;
  configs[5].momentum = 0.5;  // for the subnormal entry below
  const int threads_before = chainrule::get_num_threads();
#ifdef _OPENMP
  // Start the worker thread now, without flush-to-zero: a thread started inside the update would
  // inherit the caller's flushing mode and hide a missing flush in the worker.
#pragma omp parallel num_threads(2)
  { (void)0; }
#endif
  for (const OptimizerConfig& c : configs) {
    std::vector<std::vector<float>> params(2), state(2);
    for (int threads : {1, 2}) {
      chainrule::set_num_threads(threads);
      Optimizer<float> opt(c, n);
      std::vector<float> p(static_cast<std::size_t>(n)), g(p.size());
      for (Index i = 0; i < n; ++i) p[std::size_t(i)] = float(std::sin(0.1 * double(i)));
      for (int t = 0; t < 4; ++t) {
        for (Index i = 0; i < n; ++i) g[std::size_t(i)] = float(std::cos(0.3 * double(i + t)));
        g[std::size_t(n - 7)] = t == 0 ? 2e-38f : 0.0f;  // then decays: 1e-38 is subnormal
        opt.step(p.data(), g.data(), n, 0.01f);
      }
      params[std::size_t(threads - 1)] = p;
      const auto& s1 = opt.state1().size() ? opt.state1() : opt.state2();
      state[std::size_t(threads - 1)].assign(s1.data(), s1.data() + s1.size());
      if (c.kind == OptimizerKind::sgd && c.weight_decay == 0) {
        EXPECT_EQ(opt.state1()[n - 7], 0.0f);
      }
    }
    EXPECT_TRUE(params[0] == params[1]) << chainrule::optimizer_name(c.kind);
    EXPECT_TRUE(state[0] == state[1]) << chainrule::optimizer_name(c.kind);
  }
  chainrule::set_num_threads(threads_before);
}

// The update loops are vectorized, with scalar iterations for what is left over. Each element
// must come out the same either way (else the bits would depend on where a thread's part
// starts): a long buffer against the same values updated one element at a time, where only
// scalar code runs. Built at every ISA level, so for each vector width.
template <class T>
void expect_same_bits_for_one_element_at_a_time(const OptimizerConfig& config) {
  const Index n = 1003;  // a remainder for every vector width
  std::vector<T> whole(static_cast<std::size_t>(n)), grads(whole.size());
  for (Index i = 0; i < n; ++i) whole[std::size_t(i)] = T(std::sin(0.7 * double(i)));
  std::vector<T> single = whole;
  Optimizer<T> opt(config, n);
  std::vector<Optimizer<T>> one_each(whole.size(), Optimizer<T>(config, 1));
  for (int t = 0; t < 4; ++t) {
    for (Index i = 0; i < n; ++i) grads[std::size_t(i)] = T(std::cos(0.3 * double(i + 5 * t)));
    opt.step(whole.data(), grads.data(), n, T(0.01));
    for (std::size_t i = 0; i < whole.size(); ++i) one_each[i].step(&single[i], &grads[i], 1, T(0.01));
  }
  Index differ = 0;
  for (std::size_t i = 0; i < whole.size(); ++i) differ += whole[i] != single[i];
  EXPECT_EQ(differ, 0) << "of " << n << " parameters";
  EXPECT_NE(whole[10], T(std::sin(7.0)));  // the parameters did move
}

TEST_P(OptimizerRule, VectorAndScalarIterationsGiveTheSameBits) {
  {
    SCOPED_TRACE("float");
    expect_same_bits_for_one_element_at_a_time<float>(GetParam().config);
  }
  {
    SCOPED_TRACE("double");
    expect_same_bits_for_one_element_at_a_time<double>(GetParam().config);
  }
}

TEST(OptimizerConfigCheck, RejectsInvalidHyperParameters) {
  auto rejects = [](auto modify) {
    OptimizerConfig c;
    modify(c);
    return ::testing::AssertionResult([&] {
      try {
        Optimizer<double> opt(c, 1);
        (void)opt;
      } catch (const std::invalid_argument&) {
        return true;
      }
      return false;
    }());
  };
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.momentum = -0.1; }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.nesterov = true; }));  // no momentum
  EXPECT_TRUE(rejects([](OptimizerConfig& c) {
    c.nesterov = true, c.momentum = 0.9, c.dampening = 0.1;
  }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.beta1 = 1.0; }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.beta2 = -0.5; }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.eps = -1e-8; }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.lr_decay = -1; }));
  EXPECT_TRUE(rejects([](OptimizerConfig& c) { c.weight_decay = -1; }));
  EXPECT_FALSE(rejects([](OptimizerConfig& c) { c.nesterov = true, c.momentum = 0.9; }));
}

TEST(OptimizerNames, ParseKnownNamesRejectOthers) {
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw,
                             OptimizerKind::rmsprop, OptimizerKind::adagrad})
    EXPECT_EQ(chainrule::parse_optimizer(chainrule::optimizer_name(kind)), kind);
  EXPECT_THROW(chainrule::parse_optimizer("lbfgs"), std::invalid_argument);
}

}  // namespace
