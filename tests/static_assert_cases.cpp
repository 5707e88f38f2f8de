// Each MAE_BAD_CASE is a configuration that must not compile (tests/CMakeLists.txt checks
// that the build fails with the message quoted next to it). MAE_BAD_CASE=-1 is the control.
#include <mae/mae.hpp>

#if MAE_BAD_CASE == 0  // 30 is not a multiple of 4
using Bad = mae::Config<30, 4, 1, 32, 1, 2, 16, 1, 2>;
#elif MAE_BAD_CASE == 1  // 32 wide, 3 heads
using Bad = mae::Config<28, 4, 1, 32, 1, 3, 16, 1, 2>;
#elif MAE_BAD_CASE == 2  // decoder 16 wide, 3 heads
using Bad = mae::Config<28, 4, 1, 32, 1, 2, 16, 1, 3>;
#elif MAE_BAD_CASE == 3  // 18 wide: divisible by 3 heads, not by 4
using Bad = mae::Config<28, 4, 1, 18, 1, 3, 16, 1, 2>;
#elif MAE_BAD_CASE == 4  // decoder 6 wide
using Bad = mae::Config<28, 4, 1, 32, 1, 2, 6, 1, 2>;
#elif MAE_BAD_CASE == 5  // integers are not a scalar type for training
using Bad = mae::Config<28, 4, 1, 32, 1, 2, 16, 1, 2, 4, int>;
#else
using Bad = mae::Config<28, 4, 1, 32, 1, 2, 16, 1, 2>;
#endif

int main() {
  mae::MaskedAutoencoder<Bad> model;
  return static_cast<int>(model.parameters().size() == 0);
}
