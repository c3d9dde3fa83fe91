// A stack of dense layers trained by backpropagation.
//
// Parameters live in one flat buffer [W0, b0, W1, b1, ...] and gradients in another of the same
// layout, so optimizers, clipping and (later) allreduce are single passes over memory, and Python
// sees every W, b, dW, db as a view. Workspaces are sized for the largest batch once; a smaller
// batch uses their top rows, so a training step allocates nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "dense.hpp"
#include "loss.hpp"
#include "one_row_forward.hpp"
#include "optimizer.hpp"
#include "param_lock.hpp"
#include "random.hpp"

namespace chainrule {

// Per-layer forward values and errors for up to `capacity` samples.
template <class T>
struct Workspace {
  Index capacity = 0;
  std::vector<Matrix<T>> z, a;     // (cap, out_l): z = a_prev·W + b, a = σ(z)
  std::vector<Matrix<T>> dropped;  // (cap, out_l): a ⊙ mask, used downstream when dropout is on
  std::vector<Matrix<T>> mask;     // (cap, out_l): 0 or 1/(1 − p)
  std::vector<Matrix<T>> delta;    // (cap, out_l): δ = ∂C/∂z
  std::vector<bool> dropout_active;
  Matrix<T> x, y;                  // gathered batch inputs (cap, n_in) and targets (cap, n_out)
  std::vector<std::int32_t> labels;
  // Inference of one row (one_row_forward.hpp): the partial rows of its segments, and the
  // order in which the next call reads W, the reverse of the last one.
  std::vector<T> one_row_scratch;
  bool one_row_backwards = false;
};

// Workspaces for predict and evaluate, kept between calls so that inference allocates nothing
// once warm. Each call borrows one of its own, so several threads may predict at once.
template <class T>
class WorkspacePool {
 public:
  class Lease {
   public:
    Lease(WorkspacePool& pool, std::unique_ptr<Workspace<T>> ws)
        : pool_(pool), ws_(std::move(ws)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.give_back(std::move(ws_)); }
    Workspace<T>& operator*() { return *ws_; }

   private:
    WorkspacePool& pool_;
    std::unique_ptr<Workspace<T>> ws_;
  };

  // The workspaces are a cache: a moved-to pool starts empty (and a network stays movable).
  WorkspacePool() = default;
  WorkspacePool(WorkspacePool&&) noexcept {}
  WorkspacePool& operator=(WorkspacePool&&) noexcept { return *this; }

  Lease borrow() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (free_.empty()) {
      lock.unlock();
      return Lease(*this, std::make_unique<Workspace<T>>());
    }
    std::unique_ptr<Workspace<T>> ws = std::move(free_.back());
    free_.pop_back();
    return Lease(*this, std::move(ws));
  }

 private:
  void give_back(std::unique_ptr<Workspace<T>> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(ws));
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace<T>>> free_;
};

struct StepOptions {
  double lr = 0.01;
  double l2 = 0;             // coupled L2 penalty on weights (not biases): dW += l2·W
  double max_grad_norm = 0;  // clip the global gradient norm to this; 0 = off
};

struct TrainStats {
  double loss_sum = 0;       // Σ C_k over the samples trained on
  Index n_correct = 0;
  Index n_samples = 0;
  Index n_batches = 0;       // batches whose update was applied
  double grad_norm = 0;      // global gradient norm of the last batch (before clipping)
  int nonfinite_layer = -1;  // first layer with a non-finite gradient, when training stopped
  bool nonfinite_loss = false;
};

// Σ x² over n contiguous values, in 64 bytes' worth of independent partial sums per pass, so
// the compiler keeps several vector accumulators. One running sum is a single dependent chain of
// multiply-adds: over a 784-256-128-10 gradient it took 16 µs against 10 µs (Zen 4, AVX2), about
// 1.5 % of a batch-32 training step. Non-finite values propagate (Inf → Inf, NaN → NaN).
template <class T>
T sum_of_squares(const T* x, Index n) {
  constexpr int kLanes = 2 * 64 / int(sizeof(T));
  T partial[kLanes] = {};
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) partial[j] += x[i + j] * x[i + j];
  T sum = 0;
  for (; i < n; ++i) sum += x[i] * x[i];
  for (int j = 0; j < kLanes; ++j) sum += partial[j];
  return sum;
}

// The passes (forward, backward, training, inference) are only declared here: network.cpp
// defines them and compiles them for float and double, so the files that include this header
// do not compile the network again.
template <class T>
class Network {
 public:
  Network(const std::vector<Index>& sizes, const std::vector<Activation>& activations, Loss loss,
          double leaky_slope = 0.01)
      : sizes_(sizes), activations_(activations), loss_(loss), leaky_slope_(T(leaky_slope)) {
    if (sizes.size() < 2) throw std::invalid_argument("a network needs at least one layer");
    if (activations.size() != sizes.size() - 1)
      throw std::invalid_argument("need one activation per layer");
    for (Index s : sizes)
      if (s <= 0) throw std::invalid_argument("layer sizes must be positive");
    for (std::size_t l = 0; l + 1 < activations.size(); ++l)
      if (activations[l] == Activation::softmax)
        throw std::invalid_argument("softmax is only valid on the output layer");
    check_output_activation(loss, activations.back());
    Index offset = 0;
    for (std::size_t l = 0; l < n_layers(); ++l) {
      w_offset_.push_back(offset);
      offset += sizes[l] * sizes[l + 1];
      b_offset_.push_back(offset);
      offset += sizes[l + 1];
    }
    params_.setZero(offset);
    grads_.setZero(offset);
    dropout_.assign(n_layers(), 0.0);
    layer_sum_sq_.assign(n_layers(), -1.0);
    optimizer_ = std::make_unique<Optimizer<T>>(OptimizerConfig{}, offset);
  }

  std::size_t n_layers() const { return activations_.size(); }
  Index n_inputs() const { return sizes_.front(); }
  Index n_outputs() const { return sizes_.back(); }
  Index n_params() const { return params_.size(); }
  const std::vector<Index>& sizes() const { return sizes_; }
  Activation activation(std::size_t l) const { return activations_.at(l); }
  Loss loss() const { return loss_; }
  T leaky_slope() const { return leaky_slope_; }
  Index w_offset(std::size_t l) const { return w_offset_.at(l); }
  Index b_offset(std::size_t l) const { return b_offset_.at(l); }
  T* params() { return params_.data(); }
  T* grads() { return grads_.data(); }
  // Guards the parameters between threads of the Python layer: the bindings hold the shared
  // side around predict and evaluate, and Python the exclusive side around a training chunk.
  ParamLock& param_lock() const { return *param_lock_; }

  ConstMatrixMap<T> W(std::size_t l) const {
    return ConstMatrixMap<T>(params_.data() + w_offset_[l], sizes_[l], sizes_[l + 1]);
  }
  ConstRowVectorMap<T> b(std::size_t l) const {
    return ConstRowVectorMap<T>(params_.data() + b_offset_[l], sizes_[l + 1]);
  }
  MatrixMap<T> dW(std::size_t l) {
    return MatrixMap<T>(grads_.data() + w_offset_[l], sizes_[l], sizes_[l + 1]);
  }
  RowVectorMap<T> db(std::size_t l) {
    return RowVectorMap<T>(grads_.data() + b_offset_[l], sizes_[l + 1]);
  }

  // Dropout probability per layer; the output layer must keep 0.
  void set_dropout(const std::vector<double>& rates) {
    if (rates.size() != n_layers()) throw std::invalid_argument("need one dropout rate per layer");
    for (double p : rates)
      if (!(p >= 0 && p < 1)) throw std::invalid_argument("dropout rates must be in [0, 1)");
    if (rates.back() != 0) throw std::invalid_argument("the output layer takes no dropout");
    dropout_ = rates;
  }
  const std::vector<double>& dropout() const { return dropout_; }
  SplitMix64& rng() { return rng_; }

  void set_optimizer(const OptimizerConfig& config) {
    optimizer_ = std::make_unique<Optimizer<T>>(config, n_params());
  }
  Optimizer<T>& optimizer() { return *optimizer_; }

  void zero_grad() { grads_.setZero(); }

  // Forward pass of x (B, n_in) into ws; training turns dropout on.
  void forward(const ConstMatrixRef<T>& x, Workspace<T>& ws, bool training);

  // Output layer's δ from the cost, for the batch last run through forward().
  LossResult<T> output_delta(const Targets<T>& y, Workspace<T>& ws, Index B);

  // Backward pass from the output δ in ws: accumulates scale·∂C/∂W and scale·∂C/∂b into the
  // gradient buffer and, recursively, δ_prev = (δ·Wᵀ) ⊙ σ'(z_prev) into ws.delta.
  // If dx is given, it receives ∂C_k/∂x (B, n_in) per sample. With accumulate = false the
  // gradient buffer is overwritten rather than added to (a training step's fresh gradient).
  // With layer_sum_sq (and accumulate = false), each layer's Σ dW² + Σ db² goes into
  // layer_sum_sq[l] where the weight-gradient kernel computed it on the way, and −1 elsewhere.
  void backward(const ConstMatrixRef<T>& x, Workspace<T>& ws, T scale, MatrixRef<T>* dx = nullptr,
                bool accumulate = true, double* layer_sum_sq = nullptr);

  // The δ of every layer (and dx if given) from the output δ in ws, without the parameter
  // gradients: what trace shows. The gradient buffer is not touched.
  void backward_deltas(Index B, Workspace<T>& ws, MatrixRef<T>* dx = nullptr);

  // δ_prev = (δ·Wᵀ) ⊙ σ'(z_prev) into ws.delta[l − 1]; at the first layer, dx = δ·Wᵀ if asked.
  void propagate_delta(std::size_t l, Index B, Workspace<T>& ws, MatrixRef<T>* dx);

  // forward → cost → backward for one batch, adding scale·gradient to the gradient buffer.
  LossResult<T> accumulate_gradients(const ConstMatrixRef<T>& x, const Targets<T>& y,
                                     Workspace<T>& ws, T scale, bool training,
                                     MatrixRef<T>* dx = nullptr);

  // One full training step on a batch: forward, cost, backward (overwriting the gradient
  // buffer), check, clip, update.
  // A non-finite loss or gradient leaves the parameters untouched and is reported in stats.
  void train_step(const ConstMatrixRef<T>& x, const Targets<T>& y, const StepOptions& options,
                  TrainStats& stats);

  // The update half of a training step, on whatever the gradient buffer holds now (e.g.
  // gradients accumulated here and then summed across processes): coupled L2, global-norm
  // check, clipping, optimizer step. *norm receives the norm before clipping. A non-finite
  // gradient (or stats.nonfinite_loss already set) leaves the parameters untouched and
  // returns false; stats.nonfinite_layer names the first non-finite layer.
  // known_sum_sq[l], where ≥ 0 (or not finite), is layer l's Σ g² already computed by backward.
  bool apply_gradients(const StepOptions& options, TrainStats& stats, double* norm = nullptr,
                       const double* known_sum_sq = nullptr);

  // Trains on batches [first_batch, first_batch + n_batches) of an epoch whose sample order is
  // order[0..n) (nullptr: 0..n−1). Rows are gathered into the workspace, so X is never copied
  // whole.
  TrainStats train_batches(const ConstMatrixRef<T>& X, const Targets<T>& Y,
                           const std::vector<std::int64_t>& order, Index batch_size,
                           Index first_batch, Index n_batches, const StepOptions& options) {
    return train_batches(X, Y, order.empty() ? nullptr : order.data(), batch_size, first_batch,
                         n_batches, options);
  }

  TrainStats train_batches(const ConstMatrixRef<T>& X, const Targets<T>& Y,
                           const std::int64_t* order, Index batch_size, Index first_batch,
                           Index n_batches, const StepOptions& options);

  // out.row(i) = X.row(rows[i]) for i < count. The rows of a shuffled batch are scattered over
  // X, usually far larger than the caches, so the copy waits on memory row after row; with
  // several threads, several cores wait at once.
  static void gather_rows(const ConstMatrixRef<T>& X, const std::int64_t* rows, Index count,
                          Matrix<T>& out);
  static constexpr Index kMinParallelCopy = 1 << 16;  // values; below, a parallel region costs more

  // Inference runs in chunks of this many rows: large enough that packing W for each chunk
  // costs little (256 was 3-4 % slower at batch 1024), small enough that a chunk's
  // activations stay in L2.
  static constexpr Index kInferenceChunk = 512;

  // Outputs a = σ(z) of the last layer for X (n, n_in) into out (n, n_out), in chunks, with a
  // workspace borrowed from a pool so that several threads may predict at once.
  void predict(const ConstMatrixRef<T>& X, MatrixRef<T> out);

  // Σ_k C_k and the classification hits over X, forward only, in chunks (thread-safe like predict).
  LossResult<T> evaluate(const ConstMatrixRef<T>& X, const Targets<T>& Y);

  // Global gradient norm; records the first layer whose gradient is not finite.
  double grad_norm_checked(TrainStats& stats, const double* known_sum_sq = nullptr);

  Workspace<T>& train_workspace() { return train_ws_; }

  void reserve(Workspace<T>& ws, Index B) const;

 private:
  // The forward pass of inference: no dropout, and each layer's a = σ(a_prev·W + b) computed in
  // place in ws.a, since z is not needed again (one stream of writes less, 2-3 % at batch
  // 1024). The output layer's z is kept only when the cost needs it (output_z).
  void forward_inference(const ConstMatrixRef<T>& x, Workspace<T>& ws, bool output_z);

  // Sizes an inference workspace (predict, evaluate): each layer's a, and the output layer's z
  // and δ, which the cost needs. The hidden layers' z and δ and the gathered batch of training
  // are never touched there (3 MB at 512 rows of 784-256-128-10). Such a workspace is only ever
  // used by forward_inference.
  void reserve_inference(Workspace<T>& ws, Index B) const;

  // The input of layer l: x for the first layer, else the previous layer's (dropped-out) output.
  ConstMatrixRef<T> layer_input(const ConstMatrixRef<T>& x, Workspace<T>& ws, std::size_t l,
                                Index B) const {
    if (l == 0) return x;
    const Matrix<T>& prev = ws.dropout_active[l - 1] ? ws.dropped[l - 1] : ws.a[l - 1];
    return prev.topRows(B);
  }

  // Inverted dropout: keep each unit with probability 1 − p and scale it by 1/(1 − p).
  void apply_dropout(Workspace<T>& ws, std::size_t l, Index B);

  std::vector<Index> sizes_;
  std::vector<Activation> activations_;
  Loss loss_;
  T leaky_slope_;
  std::vector<Index> w_offset_, b_offset_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> params_, grads_;
  std::vector<double> dropout_;
  SplitMix64 rng_;
  std::unique_ptr<Optimizer<T>> optimizer_;
  Workspace<T> train_ws_;
  std::vector<double> layer_sum_sq_;  // per layer Σ g² from the last train_step's backward
  WorkspacePool<T> inference_workspaces_;
  std::unique_ptr<ParamLock> param_lock_ = std::make_unique<ParamLock>();  // keeps Network movable
};

}  // namespace chainrule
