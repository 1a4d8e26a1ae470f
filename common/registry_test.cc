#include "common/registry.h"

#include <functional>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using IntFactory = std::function<int()>;

Registry<IntFactory>& TestRegistry() {
  static auto* registry = new Registry<IntFactory>("widget");
  return *registry;
}

const Registration<IntFactory> kOne(TestRegistry(), "one", [] { return 1; });
const Registration<IntFactory> kTwo(TestRegistry(), "two", [] { return 2; });

TEST(RegistryTest, StaticRegistrationsAreFoundByName) {
  auto one = TestRegistry().Get("one");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)(), 1);
  EXPECT_TRUE(TestRegistry().Contains("two"));
  EXPECT_FALSE(TestRegistry().Contains("three"));
}

TEST(RegistryTest, UnknownNameIsNotFoundAndListsRegisteredNames) {
  EXPECT_THAT(TestRegistry().Get("tow"),
              StatusIs(absl::StatusCode::kNotFound, "not a registered widget, got \"tow\"; valid: one, two"));
}

TEST(RegistryTest, EmptyRegistrySaysNone) {
  Registry<IntFactory> empty("gadget");
  EXPECT_THAT(empty.Get("x"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("valid: none registered")));
}

TEST(RegistryTest, NamesAreSorted) {
  Registry<IntFactory> r("gadget");
  r.Register("zeta", [] { return 0; });
  r.Register("alpha", [] { return 0; });
  EXPECT_THAT(r.Names(), ElementsAre("alpha", "zeta"));
}

TEST(RegistryDeathTest, DuplicateNameAborts) {
  EXPECT_DEATH(
      {
        Registry<IntFactory> r("gadget");
        r.Register("x", [] { return 0; });
        r.Register("x", [] { return 1; });
      },
      "gadget \"x\" registered twice");
}

TEST(RegistryDeathTest, EmptyNameAborts) {
  EXPECT_DEATH(
      {
        Registry<IntFactory> r("gadget");
        r.Register("", [] { return 0; });
      },
      "empty gadget name");
}

}  // namespace
}  // namespace slimfit
