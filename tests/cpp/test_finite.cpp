// first_nonfinite: the index of the first NaN or infinity, at block edges and inside blocks,
// and no false alarm for finite values whose sum or range would overflow.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "chainrule/finite.hpp"
#include "chainrule/threads.hpp"

using chainrule::first_nonfinite;
using chainrule::Index;

TEST(FirstNonfinite, FindsTheFirstOneAnywhere) {
  const float bads[] = {std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()};
  for (Index at : {0, 1, 4095, 4096, 4097, 9999}) {
    for (float bad : bads) {
      std::vector<float> v(10000, 1.5f);
      v[at] = bad;
      if (at + 7 < 10000) v[at + 7] = bad;  // a later one is not reported
      EXPECT_EQ(first_nonfinite(v.data(), Index(v.size())), at) << "value " << bad;
    }
  }
}

TEST(FirstNonfinite, FiniteExtremesAreFinite) {
  std::vector<double> v(5000, std::numeric_limits<double>::max());
  for (std::size_t i = 0; i < v.size(); i += 2) v[i] = -v[i];
  v[3] = std::numeric_limits<double>::denorm_min();
  v[4] = -0.0;
  EXPECT_EQ(first_nonfinite(v.data(), Index(v.size())), -1);
  EXPECT_EQ(first_nonfinite(v.data(), 0), -1);
}

// A training set's worth of values is shared among threads: the smallest index still wins,
// whichever thread's run it lies in.
TEST(FirstNonfinite, SharedAmongThreadsTheFirstStillWins) {
  const int saved = chainrule::get_num_threads();
  chainrule::set_num_threads(2);
  std::vector<float> v(3 << 20, 0.25f);
  EXPECT_EQ(first_nonfinite(v.data(), Index(v.size())), -1);
  const Index late = Index(v.size()) - 5, early = 7000;
  v[late] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_nonfinite(v.data(), Index(v.size())), late);
  v[early] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(first_nonfinite(v.data(), Index(v.size())), early);
  chainrule::set_num_threads(saved);
}
