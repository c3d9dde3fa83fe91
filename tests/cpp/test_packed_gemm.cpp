// The core's own GEMM kernel (packed_gemm.hpp), against a plain triple loop in long double.
// Built only into the x86-64-v4 test executable, where the kernel exists. Operands live
// in std::vectors of exactly their size, so AddressSanitizer sees any read past an end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "chainrule/packed_gemm.hpp"
#include "chainrule/random.hpp"

#ifndef CHAINRULE_PACKED_GEMM
#error "test_packed_gemm.cpp is for the x86-64-v4 build"
#endif

namespace {

using chainrule::packed::Index;
using chainrule::packed::View;

// A (rows × cols) operand stored row-major with `ld` ≥ cols, or column-major (its transpose
// stored row-major) with `ld` ≥ rows, filled with values in [-1, 1).
template <class T>
struct Operand {
  Index rows, cols, ld;
  bool col_major;
  std::vector<T> storage;

  Operand(Index r, Index c, bool cm, Index pad, std::uint64_t seed)
      : rows(r), cols(c), ld((cm ? r : c) + pad), col_major(cm) {
    storage.resize(std::size_t((cm ? c : r) * ld));
    chainrule::SplitMix64 rng(seed);
    for (T& v : storage) v = T(2 * rng.uniform() - 1);
  }
  View<T> view() const {
    return col_major ? View<T>{storage.data(), 1, ld} : View<T>{storage.data(), ld, 1};
  }
  long double operator()(Index i, Index j) const {
    return storage[std::size_t(col_major ? j * ld + i : i * ld + j)];
  }
};

struct Case {
  Index m, n, k;
  bool a_col_major, b_col_major;
};

// All four storage orders at each shape; shapes around the tile sizes, the in-place B limit,
// the depth slices and the row blocks.
template <class T>
std::vector<Case> cases() {
  using namespace chainrule::packed;
  constexpr Index MR = Tile<T>::rows, NR = Tile<T>::cols;
  const std::vector<Index> ms = {MR, MR + 1, kDirectBRows, kDirectBRows + 1, 2 * kRowBlock + 5};
  const std::vector<Index> ns = {NR, NR + 3, kGroupPanels * NR + 1};
  const std::vector<Index> ks = {1, 9, kDepthBlock + 1, 3 * kDepthBlock - 7};
  std::vector<Case> out;
  for (Index m : ms)
    for (Index n : ns)
      for (Index k : ks)
        for (int order = 0; order < 4; ++order) out.push_back({m, n, k, bool(order & 1), bool(order & 2)});
  return out;
}

template <class T>
void check_against_triple_loop(T tolerance) {
  for (const Case& c : cases<T>()) {
    SCOPED_TRACE(::testing::Message() << "m " << c.m << " n " << c.n << " k " << c.k
                                      << (c.a_col_major ? " Aᵀ" : " A")
                                      << (c.b_col_major ? " Bᵀ" : " B"));
    const Operand<T> a(c.m, c.k, c.a_col_major, 3, 1), b(c.k, c.n, c.b_col_major, 5, 2);
    const Index ldc = c.n + 2;
    const Operand<T> start(c.m, ldc, false, 0, 3);
    std::vector<long double> product(std::size_t(c.m * c.n), 0);
    for (Index i = 0; i < c.m; ++i)
      for (Index j = 0; j < c.n; ++j) {
        long double sum = 0;
        for (Index p = 0; p < c.k; ++p) sum += a(i, p) * b(p, j);
        product[std::size_t(i * c.n + j)] = sum;
      }
    for (const bool accumulate : {false, true}) {
      const T alpha = accumulate ? T(0.5) : T(-1.25);
      std::vector<T> dst = start.storage;
      chainrule::packed::gemm<T>(c.m, c.n, c.k, a.view(), b.view(), dst.data(), ldc, alpha,
                                 accumulate, 1);
      double worst = 0;
      for (Index i = 0; i < c.m; ++i)
        for (Index j = 0; j < ldc; ++j) {
          long double expected = start(i, j);  // the padding columns must stay untouched
          if (j < c.n)
            expected = alpha * product[std::size_t(i * c.n + j)] + (accumulate ? expected : 0);
          worst = std::max(worst, double(std::fabs(expected - dst[std::size_t(i * ldc + j)])));
        }
      // Each of the k terms is at most 1 in size: rounding grows at most like k·ε.
      EXPECT_LE(worst, tolerance * double(c.k)) << "accumulate " << accumulate;
    }
  }
}

TEST(PackedGemm, FloatMatchesTripleLoop) { check_against_triple_loop<float>(4e-7f); }
TEST(PackedGemm, DoubleMatchesTripleLoop) { check_against_triple_loop<double>(1e-15); }

// Many depth slices, on two threads, against a reference summed in double.
TEST(PackedGemm, DeepProductOnTwoThreads) {
  const Index m = 96, n = 64, k = 30000;
  const Operand<float> a(m, k, true, 0, 7), b(k, n, false, 0, 8);
  std::vector<float> dst(std::size_t(m * n), 0.5f);
  chainrule::packed::gemm<float>(m, n, k, a.view(), b.view(), dst.data(), n, 1.0f, true, 2);
  std::vector<double> expected(std::size_t(m * n), 0.5);
  for (Index i = 0; i < m; ++i)
    for (Index p = 0; p < k; ++p) {
      const double a_ip = a.storage[std::size_t(p * a.ld + i)];  // A is column-major
      const float* b_row = b.storage.data() + p * b.ld;
      for (Index j = 0; j < n; ++j) expected[std::size_t(i * n + j)] += a_ip * b_row[j];
    }
  double worst = 0;
  for (std::size_t e = 0; e < expected.size(); ++e)
    worst = std::max(worst, std::fabs(expected[e] - dst[e]));
  // Terms of size ≤ 1 summed in float: the error grows like √k·ε typically, k·ε at worst.
  EXPECT_LE(worst, 1e-7 * k);
}

TEST(PackedGemm, ZeroDepthClearsOrKeeps) {
  std::vector<float> dst(6 * 40, 3.0f);
  const View<float> none{nullptr, 0, 1};
  chainrule::packed::gemm<float>(6, 40, 0, none, none, dst.data(), 40, 2.0f, true, 1);
  for (float v : dst) EXPECT_EQ(v, 3.0f);
  chainrule::packed::gemm<float>(6, 40, 0, none, none, dst.data(), 40, 2.0f, false, 1);
  for (float v : dst) EXPECT_EQ(v, 0.0f);
}

// The summation order of every element depends on k alone, so any split of the work among
// threads gives the same bits.
TEST(PackedGemm, BitIdenticalForAnyThreadCount) {
  const Operand<float> a(700, 300, true, 0, 4), b(300, 260, true, 0, 5);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    std::vector<float> dst(700 * 260, 1.0f);
    chainrule::packed::gemm<float>(700, 260, 300, a.view(), b.view(), dst.data(), 260, 0.3f,
                                   true, threads);
    results.push_back(dst);
  }
  EXPECT_EQ(results[1], results[0]);
  EXPECT_EQ(results[2], results[0]);
}

// The epilogue (bias, then relu into C or into another matrix) gives the same bits as the
// unfused passes over the product, at edge tiles, across depth slices and on 2 threads.
template <class T>
void check_epilogue_matches_unfused_passes() {
  using chainrule::packed::Epilogue;
  constexpr Index MR = chainrule::packed::Tile<T>::rows, NR = chainrule::packed::Tile<T>::cols;
  for (const Case& c : {Case{5 * MR + 7, 3 * NR + 5, 2 * chainrule::packed::kDepthBlock + 3, false,
                             false},
                        Case{2 * MR, 2 * NR, 40, true, true}}) {
    SCOPED_TRACE(::testing::Message() << "m " << c.m << " n " << c.n << " k " << c.k);
    const Operand<T> a(c.m, c.k, c.a_col_major, 1, 11), b(c.k, c.n, c.b_col_major, 2, 12);
    const Operand<T> bias(1, c.n, false, 0, 13), start(c.m, c.n + 3, false, 0, 14);
    const Index ld = c.n + 3;  // three padding columns that must stay untouched
    for (const bool accumulate : {false, true})
      for (int threads : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << "accumulate " << accumulate << " threads " << threads);
        const T alpha = T(0.75);
        // Unfused: the product, then C += b and a = max(C, 0) as separate passes.
        std::vector<T> z = start.storage, a_apart = start.storage;
        chainrule::packed::gemm<T>(c.m, c.n, c.k, a.view(), b.view(), z.data(), ld, alpha,
                                   accumulate, threads);
        for (Index i = 0; i < c.m; ++i)
          for (Index j = 0; j < c.n; ++j) {
            T& zij = z[std::size_t(i * ld + j)];
            zij = zij + bias.storage[std::size_t(j)];
            a_apart[std::size_t(i * ld + j)] = std::max(zij, T(0));
          }
        // Fused, relu into another matrix.
        std::vector<T> z_fused = start.storage, a_fused = start.storage;
        Epilogue<T> apart;
        apart.bias = bias.storage.data();
        apart.relu = true;
        apart.relu_out = a_fused.data();
        apart.ld_relu_out = ld;
        chainrule::packed::gemm<T>(c.m, c.n, c.k, a.view(), b.view(), z_fused.data(), ld, alpha,
                                   accumulate, threads, &apart);
        EXPECT_EQ(z_fused, z);
        EXPECT_EQ(a_fused, a_apart);
        // Fused, relu over C itself.
        std::vector<T> in_place = start.storage;
        Epilogue<T> over_c;
        over_c.bias = bias.storage.data();
        over_c.relu = true;
        chainrule::packed::gemm<T>(c.m, c.n, c.k, a.view(), b.view(), in_place.data(), ld, alpha,
                                   accumulate, threads, &over_c);
        EXPECT_EQ(in_place, a_apart);
      }
  }
}

TEST(PackedGemm, FloatEpilogueMatchesUnfusedPasses) { check_epilogue_matches_unfused_passes<float>(); }
TEST(PackedGemm, DoubleEpilogueMatchesUnfusedPasses) {
  check_epilogue_matches_unfused_passes<double>();
}

// The relu keeps NaN (a non-finite step must still be seen downstream) and clamps the rest.
TEST(PackedGemm, EpilogueReluKeepsNaN) {
  using chainrule::packed::relu_of;
  EXPECT_TRUE(std::isnan(relu_of(std::nanf(""))));
  EXPECT_EQ(relu_of(-2.0f), 0.0f);
  EXPECT_EQ(relu_of(3.0), 3.0);
  const Operand<float> a(24, 8, false, 0, 15), b(8, 64, false, 0, 16);
  std::vector<float> biases(64, 0.0f);
  biases[5] = std::nanf("");
  std::vector<float> dst(24 * 64, 0.0f);
  chainrule::packed::Epilogue<float> ep;
  ep.bias = biases.data();
  ep.relu = true;
  chainrule::packed::gemm<float>(24, 64, 8, a.view(), b.view(), dst.data(), 64, 1.0f, false, 1,
                                 &ep);
  for (Index i = 0; i < 24; ++i)
    for (Index j = 0; j < 64; ++j) {
      const float v = dst[std::size_t(i * 64 + j)];
      if (j == 5) EXPECT_TRUE(std::isnan(v));
      else EXPECT_GE(v, 0.0f);
    }
}

}  // namespace
