// Exit status 0 if this CPU runs the given x86-64 level ("v2", "v3" or "v4"), 1 if not. Built for
// the baseline, it lets ctest skip a test executable compiled for a level the CPU lacks instead of
// starting it and dying of an illegal instruction.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s v2|v3|v4\n", argv[0]);
    return 2;
  }
  __builtin_cpu_init();
  const bool v2 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
  const bool v3 = v2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
  const char* level = argv[1];
  const bool ok = std::strcmp(level, "v2") == 0   ? v2
                  : std::strcmp(level, "v3") == 0 ? v3
                  : std::strcmp(level, "v4") == 0 ? v4
                                                  : false;
  if (!ok) std::printf("this CPU does not run x86-64-%s: skipped\n", level);
  return ok ? 0 : 1;
}
