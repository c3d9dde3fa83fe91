// A small seeded generator for dropout masks. SplitMix64 is defined bit for bit, so the same
// seed gives the same masks on every platform and compiler (std distributions do not).
#pragma once

#include <cstdint>

namespace chainrule {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed = 0) : state_(seed) {}
  std::uint64_t state() const { return state_; }
  void set_state(std::uint64_t s) { state_ = s; }

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

}  // namespace chainrule
