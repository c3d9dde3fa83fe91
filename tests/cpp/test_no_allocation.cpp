// A warm training step and a warm prediction allocate nothing on the heap.
//
// This file is its own executable, linked to the same core as the Python module (Release, no
// test-only defines). It replaces glibc's malloc family with counting wrappers, so any heap
// allocation in the measured window counts, from any thread and from any library: Eigen's
// matrices and packing buffers, standard containers, the OpenMP runtime.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "chainrule/network.hpp"
#include "chainrule/threads.hpp"

#if defined(__GLIBC__)
#define CHAINRULE_COUNTS_MALLOC 1

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

void count_one() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
}
}  // namespace

// glibc's own entry points, which these definitions (found first, in the executable) wrap.
// operator new and libgomp reach malloc through the same lookup.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t size) {
  count_one();
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  count_one();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  count_one();
  return __libc_realloc(p, size);
}
void* memalign(std::size_t alignment, std::size_t size) {
  count_one();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  count_one();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  count_one();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}
#endif

// Without glibc nothing here can be counted: the tests skip, except under CI (CI set), where
// they fail, so that CI never passes without counting.
#define SKIP_OR_FAIL_WITHOUT_COUNTING()                                      \
  do {                                                                       \
    if (std::getenv("CI") != nullptr) FAIL() << "counting allocations needs glibc"; \
    GTEST_SKIP() << "counting allocations needs glibc";                      \
  } while (0)

namespace {

using chainrule::Activation;
using chainrule::Index;
using chainrule::Matrix;
using chainrule::OptimizerConfig;
using chainrule::OptimizerKind;

// Counts the heap allocations made while it lives.
class CountAllocations {
 public:
  CountAllocations() {
#ifdef CHAINRULE_COUNTS_MALLOC
    allocations = 0;
    counting = true;
#endif
  }
  ~CountAllocations() { stop(); }
  long stop() {
#ifdef CHAINRULE_COUNTS_MALLOC
    counting = false;
    return allocations.load();
#else
    return 0;
#endif
  }
};

TEST(CountAllocations, SeesAllocationsFromEveryPath) {
#ifndef CHAINRULE_COUNTS_MALLOC
  SKIP_OR_FAIL_WITHOUT_COUNTING();
#else
  // The pointers escape through a volatile, so the compiler cannot drop the allocations.
  static const void* volatile escaped;
  CountAllocations count;
  std::vector<int> v(100);  // operator new
  escaped = v.data();
  Matrix<float> m(64, 64);  // Eigen's aligned allocator
  escaped = m.data();
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, 64, 256), 0);
  escaped = p;
  std::free(p);
  EXPECT_EQ(count.stop(), 3);
#endif
}

struct Case {
  Index batch;
  int threads;
  OptimizerKind optimizer;
};

class NoAllocation : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { chainrule::set_num_threads(1); }
};

TEST_P(NoAllocation, WarmTrainingAndPredictionAllocateNothing) {
#ifndef CHAINRULE_COUNTS_MALLOC
  SKIP_OR_FAIL_WITHOUT_COUNTING();
#endif
  const Case c = GetParam();
  chainrule::set_num_threads(c.threads);
  const Index n = 2 * c.batch + 7;  // two full batches and a partial one
  chainrule::Network<float> net({784, 256, 128, 10},
                                {Activation::relu, Activation::relu, Activation::softmax},
                                chainrule::Loss::cross_entropy);
  chainrule::SplitMix64 rng(1);
  for (Index i = 0; i < net.n_params(); ++i) net.params()[i] = float(0.05 * (rng.uniform() - 0.5));
  OptimizerConfig config;
  config.kind = c.optimizer;
  config.momentum = c.optimizer == OptimizerKind::sgd ? 0.9 : 0.0;
  net.set_optimizer(config);
  net.set_dropout({0.2, 0.0, 0.0});

  Matrix<float> X(n, 784), out(n, 10);
  for (Index i = 0; i < X.size(); ++i) X.data()[i] = float(rng.uniform());
  std::vector<std::int32_t> labels(n);
  for (Index i = 0; i < n; ++i) labels[i] = std::int32_t(i % 10);
  chainrule::Targets<float> y;
  y.labels = labels.data();
  std::vector<std::int64_t> order(n);
  for (Index i = 0; i < n; ++i) order[i] = n - 1 - i;
  chainrule::StepOptions options;
  options.lr = 0.01;
  options.max_grad_norm = 5.0;

  const Index batches = (n + c.batch - 1) / c.batch;
  auto epoch = [&] { return net.train_batches(X, y, order, c.batch, 0, batches, options); };
  epoch();  // warm-up: sizes the workspace and every thread's packing buffers
  net.predict(X, out);
  chainrule::TrainStats stats;
  CountAllocations count;
  stats = epoch();
  net.predict(X, out);
  net.predict(X.topRows(1), out.topRows(1));
  EXPECT_EQ(count.stop(), 0);
  EXPECT_EQ(stats.n_batches, batches);
  EXPECT_TRUE(out.allFinite());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NoAllocation,
    ::testing::Values(Case{32, 1, OptimizerKind::sgd}, Case{32, 2, OptimizerKind::sgd},
                      Case{1024, 1, OptimizerKind::sgd},
                      Case{256, 2, OptimizerKind::adam}, Case{1024, 2, OptimizerKind::sgd}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return "batch" + std::to_string(info.param.batch) + "_threads" +
             std::to_string(info.param.threads) +
             (info.param.optimizer == OptimizerKind::adam ? "_adam" : "_sgd");
    });

}  // namespace
