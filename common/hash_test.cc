#include "common/hash.h"

#include <string>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

// With FNV's own offset basis: the published FNV-1a 64-bit test vectors.
TEST(Fnv1aTest, IsFnv1a) {
  EXPECT_EQ(Fnv1a("", 0, kFnv1aStandardOffset), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a("a", 1, kFnv1aStandardOffset), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a("foobar", 6, kFnv1aStandardOffset), 0x85944171f73967e8ull);
}

// With slimfit's basis: the values run directories are named by (must never
// change; computed independently in Python).
TEST(Fnv1aTest, SlimfitValuesAreStable) {
  EXPECT_EQ(Fnv1a("", 0), 0x14650fb0739d0383ull);
  EXPECT_EQ(Fnv1a("a", 1), 0x44bd8ad473cd9906ull);
  EXPECT_EQ(Fnv1a("foobar", 6), 0x88fad7c0a8ff07f2ull);
}

TEST(Fnv1aTest, ChainedPiecesHashLikeTheWhole) {
  const std::string a = "foo", b = "bar";
  EXPECT_EQ(Fnv1a(b.data(), b.size(), Fnv1a(a.data(), a.size())), Fnv1a("foobar", 6));
  EXPECT_NE(Fnv1a("foobaz", 6), Fnv1a("foobar", 6));
}

}  // namespace
}  // namespace slimfit
