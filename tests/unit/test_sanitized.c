/* The asan test setup must run sanitized code: this test (suite asan, run only by
 * `meson test --setup=asan`) fails unless the build has ASan, so the setup cannot pass in
 * a plain build without anyone noticing. */
#include "unit.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

int main(void)
{
  CHECK(SANITIZED, "the asan setup runs in a build without -Db_sanitize=address,undefined");
  return 0;
}
