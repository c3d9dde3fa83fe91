// Optimizers: one fused pass over the flat parameter and gradient buffers per step.
// The update rules are the ones PyTorch documents for torch.optim (SGD, Adam, AdamW, RMSprop,
// Adagrad), so a user who switches sees the same trajectory.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "threads.hpp"
#include "types.hpp"

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define CHAINRULE_HAS_MXCSR 1
#endif

namespace chainrule {

// Flush-to-zero and denormals-are-zero on this thread while it lives, then the caller's mode
// again. A state entry whose gradient is exactly zero (the weights of an always-blank MNIST
// pixel, of a dead ReLU) decays geometrically (b ← μ·b) through the subnormal range, and
// every vector operation that meets a subnormal takes a microcode assist: on MNIST, 6-9 % of
// the momentum buffer was subnormal after one epoch and training ran 25-30 % slower. Flushed,
// such an entry becomes 0 below 1.2e-38 (float) or 2.2e-308 (double), where it could not move
// a weight anyway. Every thread of the update sets it for its own part (a worker thread keeps its
// own mode), so results stay the same for any thread count. (Elsewhere than x86 this does
// nothing.)
class FlushSubnormals {
 public:
#ifdef CHAINRULE_HAS_MXCSR
  FlushSubnormals() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
  }
  ~FlushSubnormals() { _mm_setcsr(saved_); }
#else
  FlushSubnormals() = default;
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
#ifdef CHAINRULE_HAS_MXCSR
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

enum class OptimizerKind { sgd, adam, adamw, rmsprop, adagrad };

inline const char* optimizer_names() { return "sgd, adam, adamw, rmsprop, adagrad"; }

inline OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "adam") return OptimizerKind::adam;
  if (name == "adamw") return OptimizerKind::adamw;
  if (name == "rmsprop") return OptimizerKind::rmsprop;
  if (name == "adagrad") return OptimizerKind::adagrad;
  throw std::invalid_argument("unknown optimizer '" + name + "'; valid names: " +
                              optimizer_names());
}

inline const char* optimizer_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::adamw: return "adamw";
    case OptimizerKind::rmsprop: return "rmsprop";
    case OptimizerKind::adagrad: return "adagrad";
  }
  return "?";
}

// Hyper-parameters, named as in torch.optim. Only those of the chosen kind are read.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0;      // sgd, rmsprop
  double dampening = 0;     // sgd
  bool nesterov = false;    // sgd
  double beta1 = 0.9;       // adam, adamw
  double beta2 = 0.999;     // adam, adamw
  double eps = 1e-8;        // adam, adamw, rmsprop, adagrad
  double alpha = 0.99;      // rmsprop smoothing constant
  bool centered = false;    // rmsprop
  double lr_decay = 0;      // adagrad
  double initial_accumulator_value = 0;  // adagrad
  double weight_decay = 0;  // coupled (added to g) for all kinds but adamw, where it is decoupled
};

template <class T>
class Optimizer {
 public:
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  Optimizer(const OptimizerConfig& config, Index n_params) : config_(config) {
    validate(config);
    const bool sgd_momentum = config.kind == OptimizerKind::sgd && config.momentum != 0;
    const bool rms_momentum = config.kind == OptimizerKind::rmsprop && config.momentum > 0;
    const bool adam_like = config.kind == OptimizerKind::adam || config.kind == OptimizerKind::adamw;
    // state1: momentum buffer / first moment m; state2: second moment v / square average / sum;
    // state3: rmsprop's centred gradient average.
    if (sgd_momentum || adam_like) state1_.setZero(n_params);
    if (rms_momentum) state1_.setZero(n_params);
    if (adam_like || config.kind == OptimizerKind::rmsprop) state2_.setZero(n_params);
    if (config.kind == OptimizerKind::adagrad)
      state2_.setConstant(n_params, T(config.initial_accumulator_value));
    if (config.kind == OptimizerKind::rmsprop && config.centered) state3_.setZero(n_params);
  }

  static void validate(const OptimizerConfig& c) {
    auto require = [](bool ok, const char* what) {
      if (!ok) throw std::invalid_argument(what);
    };
    require(c.momentum >= 0, "momentum must be >= 0");
    require(!c.nesterov || (c.momentum > 0 && c.dampening == 0),
            "nesterov needs momentum > 0 and dampening == 0");
    require(c.beta1 >= 0 && c.beta1 < 1, "beta1 must be in [0, 1)");
    require(c.beta2 >= 0 && c.beta2 < 1, "beta2 must be in [0, 1)");
    require(c.eps >= 0, "eps must be >= 0");
    require(c.alpha >= 0, "alpha must be >= 0");
    require(c.lr_decay >= 0, "lr_decay must be >= 0");
    require(c.initial_accumulator_value >= 0, "initial_accumulator_value must be >= 0");
    require(c.weight_decay >= 0, "weight_decay must be >= 0");
  }

  const OptimizerConfig& config() const { return config_; }
  std::int64_t step_count() const { return step_; }
  void set_step_count(std::int64_t t) { step_ = t; }
  Vector& state1() { return state1_; }
  Vector& state2() { return state2_; }
  Vector& state3() { return state3_; }

  // params and grads are (n) flat buffers; lr is this step's learning rate. The update is
  // elementwise, so threads share it in any split and the results are the same bits; each
  // thread flushes subnormals on its own part.
  void step(T* params, const T* grads, Index n, T lr) {
    ++step_;
    const int threads = n >= kMinParallelUpdate ? get_num_threads() : 1;
    parallel_for(threads, threads, [&](Index part) {  // one contiguous part per thread
      const Index begin = n * part / threads / 16 * 16;  // 64-byte aligned parts for float
      const Index end = part + 1 == threads ? n : n * (part + 1) / threads / 16 * 16;
      update(params, grads, begin, end, lr);
    });
  }

 private:
  static constexpr Index kMinParallelUpdate = 1 << 16;  // below, a parallel region costs more

  void update(T* params, const T* grads, Index begin, Index end, T lr) {
    const FlushSubnormals flush;
    Eigen::Map<Vector> p(params + begin, end - begin);
    Eigen::Map<const Vector> g(grads + begin, end - begin);
    const T wd = T(config_.weight_decay);
    switch (config_.kind) {
      case OptimizerKind::sgd: sgd(p, g, begin, lr, wd); break;
      case OptimizerKind::adam: adam(p, g, begin, lr, wd, false); break;
      case OptimizerKind::adamw: adam(p, g, begin, lr, wd, true); break;
      case OptimizerKind::rmsprop: rmsprop(p, g, begin, lr, wd); break;
      case OptimizerKind::adagrad: adagrad(p, g, begin, lr, wd); break;
    }
  }

  // Each rule updates p from g, both starting at element `at` of the flat buffers, and the
  // optimizer state from its element `at` on. The loops are written for the compiler to
  // vectorize: constants hoisted, one branch-free body per variant, the buffers declared not
  // to overlap, and the core built with -fno-math-errno (CMakeLists.txt), without which
  // std::sqrt keeps Adam, RMSprop and Adagrad scalar. Vector and scalar iterations compute the
  // same operations per element, so the bits do not depend on where a part starts.
  void sgd(Eigen::Map<Vector>& p, const Eigen::Map<const Vector>& g, Index at, T lr, T wd) {
    const T mu = T(config_.momentum), damp = T(config_.dampening);
    const Index n = p.size();
    T* CHAINRULE_RESTRICT w = p.data();
    const T* CHAINRULE_RESTRICT grad = g.data();
    if (mu == 0) {
      for (Index i = 0; i < n; ++i) w[i] -= lr * (grad[i] + wd * w[i]);
      return;
    }
    T* CHAINRULE_RESTRICT b = state1_.data() + at;
    const bool first = step_ == 1;
    const T keep = T(1) - damp;
    if (config_.nesterov) {
      for (Index i = 0; i < n; ++i) {
        const T gi = grad[i] + wd * w[i];
        b[i] = first ? gi : mu * b[i] + keep * gi;
        w[i] -= lr * (gi + mu * b[i]);
      }
    } else {
      for (Index i = 0; i < n; ++i) {
        const T gi = grad[i] + wd * w[i];
        b[i] = first ? gi : mu * b[i] + keep * gi;
        w[i] -= lr * b[i];
      }
    }
  }

  void adam(Eigen::Map<Vector>& p, const Eigen::Map<const Vector>& g, Index at, T lr, T wd,
            bool decoupled) {
    const T b1 = T(config_.beta1), b2 = T(config_.beta2), eps = T(config_.eps);
    const T bias1 = T(1) - std::pow(b1, T(step_));
    const T bias2_sqrt = std::sqrt(T(1) - std::pow(b2, T(step_)));
    // m̂/(√v̂ + ε) = (m/bias1)·bias2_sqrt/(√v + ε·bias2_sqrt): PyTorch's formula with one
    // division per element instead of two; the divider bounds this loop.
    const T step_size = lr / bias1 * bias2_sqrt, eps_scaled = eps * bias2_sqrt;
    const T decay = decoupled ? T(1) - lr * wd : T(1);
    const T coupled_wd = decoupled ? T(0) : wd;
    const T one_minus_b1 = T(1) - b1, one_minus_b2 = T(1) - b2;
    const Index n = p.size();
    T* CHAINRULE_RESTRICT w = p.data();
    const T* CHAINRULE_RESTRICT grad = g.data();
    T* CHAINRULE_RESTRICT m = state1_.data() + at;
    T* CHAINRULE_RESTRICT v = state2_.data() + at;
    for (Index i = 0; i < n; ++i) {
      const T gi = grad[i] + coupled_wd * w[i];
      m[i] = b1 * m[i] + one_minus_b1 * gi;
      v[i] = b2 * v[i] + one_minus_b2 * gi * gi;
      w[i] = decay * w[i] - step_size * m[i] / (std::sqrt(v[i]) + eps_scaled);
    }
  }

  void rmsprop(Eigen::Map<Vector>& p, const Eigen::Map<const Vector>& g, Index at, T lr, T wd) {
    const bool centered = config_.centered, momentum = config_.momentum > 0;
    if (centered && momentum) rmsprop_rule<true, true>(p, g, at, lr, wd);
    if (centered && !momentum) rmsprop_rule<true, false>(p, g, at, lr, wd);
    if (!centered && momentum) rmsprop_rule<false, true>(p, g, at, lr, wd);
    if (!centered && !momentum) rmsprop_rule<false, false>(p, g, at, lr, wd);
  }

  template <bool Centered, bool Momentum>
  void rmsprop_rule(Eigen::Map<Vector>& p, const Eigen::Map<const Vector>& g, Index at, T lr,
                    T wd) {
    const T alpha = T(config_.alpha), eps = T(config_.eps), mu = T(config_.momentum);
    const T one_minus_alpha = T(1) - alpha;
    const Index n = p.size();
    T* CHAINRULE_RESTRICT w = p.data();
    const T* CHAINRULE_RESTRICT grad = g.data();
    T* CHAINRULE_RESTRICT v = state2_.data() + at;
    T* CHAINRULE_RESTRICT g_avg = Centered ? state3_.data() + at : nullptr;
    T* CHAINRULE_RESTRICT b = Momentum ? state1_.data() + at : nullptr;
    for (Index i = 0; i < n; ++i) {
      const T gi = grad[i] + wd * w[i];
      v[i] = alpha * v[i] + one_minus_alpha * gi * gi;
      T v_tilde = v[i];
      if constexpr (Centered) {
        g_avg[i] = alpha * g_avg[i] + one_minus_alpha * gi;
        v_tilde -= g_avg[i] * g_avg[i];
      }
      const T update = gi / (std::sqrt(v_tilde) + eps);
      if constexpr (Momentum) {
        b[i] = mu * b[i] + update;
        w[i] -= lr * b[i];
      } else {
        w[i] -= lr * update;
      }
    }
  }

  void adagrad(Eigen::Map<Vector>& p, const Eigen::Map<const Vector>& g, Index at, T lr, T wd) {
    const T eps = T(config_.eps);
    const T lr_t = lr / (T(1) + T(step_ - 1) * T(config_.lr_decay));
    const Index n = p.size();
    T* CHAINRULE_RESTRICT w = p.data();
    const T* CHAINRULE_RESTRICT grad = g.data();
    T* CHAINRULE_RESTRICT sum = state2_.data() + at;
    for (Index i = 0; i < n; ++i) {
      const T gi = grad[i] + wd * w[i];
      sum[i] += gi * gi;
      w[i] -= lr_t * gi / (std::sqrt(sum[i]) + eps);
    }
  }

  OptimizerConfig config_;
  std::int64_t step_ = 0;
  Vector state1_, state2_, state3_;
};

}  // namespace chainrule
