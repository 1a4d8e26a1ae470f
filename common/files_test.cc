#include "common/files.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "common/file_size_limit.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TempDir() { return testing::TempPath("files_test"); }

int CountEntries(const std::string& dir) {
  int n = 0;
  for (auto& unused : std::filesystem::directory_iterator(dir)) {
    (void)unused;
    ++n;
  }
  return n;
}

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(CreateDirectories(TempDir())); }
};

TEST_F(FilesTest, WriteThenReadRoundTrips) {
  const std::string dir = TempDir() + "/rt";
  ASSERT_OK(CreateDirectories(dir));
  const std::string path = dir + "/a.txt";
  ASSERT_OK(WriteFileAtomically(path, std::string("hello\0world", 11)));
  EXPECT_THAT(ReadFileToString(path), IsOkAndHolds(std::string("hello\0world", 11)));
  EXPECT_THAT(RegularFileSize(path), IsOkAndHolds(11));
  ASSERT_OK(WriteFileAtomically(path, "second"));
  EXPECT_THAT(ReadFileToString(path), IsOkAndHolds("second"));
  EXPECT_EQ(CountEntries(dir), 1) << "temporary files were left behind";
}

TEST_F(FilesTest, FailedWriteLeavesOldFileAndNoTemporary) {
  const std::string dir = TempDir() + "/fail";
  ASSERT_OK(CreateDirectories(dir));
  const std::string path = dir + "/model.pt";
  ASSERT_OK(WriteFileAtomically(path, "old"));
  absl::Status s = ReplaceFileAtomically(path, [](const std::string& tmp) {
    // Start writing, then fail half-way (as a full disk would).
    EXPECT_OK(WriteFileAtomically(tmp, "half-written"));
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted, "disk full"));
  EXPECT_THAT(ReadFileToString(path), IsOkAndHolds("old"));
  EXPECT_EQ(CountEntries(dir), 1);
}

// A real failing write: the kernel refuses bytes past RLIMIT_FSIZE (EFBIG,
// as a full disk gives ENOSPC) half-way through the temporary file.
TEST_F(FilesTest, WriteThatTheKernelRefusesLeavesOldFileAndReportsThePath) {
  const std::string dir = TempDir() + "/full";
  ASSERT_OK(CreateDirectories(dir));
  const std::string path = dir + "/report.json";
  ASSERT_OK(WriteFileAtomically(path, "old"));
  const std::string big(1 << 20, 'x');
  EXPECT_THAT(RunWithFileSizeLimit(64 << 10, [&] { return WriteFileAtomically(path, big); }),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("report.json"), HasSubstr("File too large"))));
  EXPECT_THAT(ReadFileToString(path), IsOkAndHolds("old"));
  EXPECT_EQ(CountEntries(dir), 1);  // no temporary left behind
}

TEST_F(FilesTest, WriteIntoMissingDirectoryNamesThePath) {
  EXPECT_THAT(WriteFileAtomically(TempDir() + "/no/such/dir/x", "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no/such/dir")));
}

TEST_F(FilesTest, ReadErrorsNameThePath) {
  EXPECT_THAT(ReadFileToString("/nonexistent/file.pbtxt"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("\"/nonexistent/file.pbtxt\"")));
  EXPECT_THAT(ReadFileToString(TempDir()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is a directory")));
  EXPECT_THAT(RegularFileSize(TempDir()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not a regular file")));
}

TEST_F(FilesTest, CreateDirectoriesRefusesAFile) {
  const std::string path = TempDir() + "/plainfile";
  ASSERT_OK(WriteFileAtomically(path, "x"));
  EXPECT_FALSE(CreateDirectories(path).ok());
  EXPECT_OK(CreateDirectories(TempDir() + "/x/y/z"));
  EXPECT_OK(CreateDirectories(TempDir() + "/x/y/z"));  // idempotent
}

}  // namespace
}  // namespace slimfit
