// CandidateStore: records and models survive reopening, in completion
// order; temporaries and orphan models are ignored; a damaged record is a
// clear error; and a writer killed with SIGKILL mid-stream leaves only
// complete records behind.
#include "search/candidate_store.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string d = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  std::filesystem::remove_all(d);
  return d;
}

CandidateRecord Record(const std::string& key, double metric) {
  CandidateRecord r;
  r.set_key(key);
  r.set_description(absl::StrCat("candidate ", key));
  r.set_eval_metric(metric);
  (*r.mutable_metrics())["accuracy"] = metric;
  r.set_macs(1000);
  return r;
}

TEST(CandidateStore, RecordsAndModelsSurviveReopeningInOrder) {
  const std::string dir = Dir("reopen");
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  {
    ASSERT_OK_AND_ASSIGN(auto store, CandidateStore::Open(dir));
    ASSERT_OK(store->Put(Record("l1_filter r=0.5 ft=1", 91.0), &m));
    ASSERT_OK(store->Put(Record("fpgm r=0.5 ft=1", 91.5)));
    ASSERT_OK(store->Put(Record("taylor r=0.7 ft=1", 89.0), &m));
    ASSERT_OK(store->Put(Record("fpgm r=0.5 ft=1", 92.0)));  // replaces, completes last
  }
  // Debris a kill could leave: a temporary and a model without a record.
  ASSERT_OK(WriteFileAtomically(dir + "/.0123.pbtxt.tmp.77", "key: 'half"));
  ASSERT_OK(m.Save(dir + "/ffffffffffffffff.pt"));
  ASSERT_OK_AND_ASSIGN(auto store, CandidateStore::Open(dir));
  const std::vector<CandidateRecord> all = store->All();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].key(), "l1_filter r=0.5 ft=1");
  EXPECT_EQ(all[1].key(), "taylor r=0.7 ft=1");
  EXPECT_EQ(all[2].key(), "fpgm r=0.5 ft=1");
  EXPECT_DOUBLE_EQ(all[2].eval_metric(), 92.0);
  ASSERT_NE(store->Find("taylor r=0.7 ft=1"), nullptr);
  EXPECT_EQ(store->Find("nope"), nullptr);
  ASSERT_OK_AND_ASSIGN(Model back, store->LoadModel(*store->Find("l1_filter r=0.5 ft=1")));
  EXPECT_EQ(back.NumParameters(), m.NumParameters());
  EXPECT_THAT(store->LoadModel(*store->Find("fpgm r=0.5 ft=1")).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no model kept for \"candidate fpgm r=0.5 ft=1\"")));
  // The next record continues the sequence.
  ASSERT_OK(store->Put(Record("apoz r=0.3 ft=1", 90.0)));
  EXPECT_EQ(store->All().back().sequence(), all[2].sequence() + 1);
}

// The copy other ranks of a distributed search keep: nothing on disk,
// models kept as copies, another store's records inserted as they are.
TEST(CandidateStore, InMemoryKeepsRecordsAndModelsAndWritesNothing) {
  auto store = CandidateStore::InMemory();
  EXPECT_EQ(store->dir(), "");
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ASSERT_OK(store->Put(Record("a", 90), &m));
  CandidateRecord copied = Record("b", 80);
  copied.set_sequence(7);
  ASSERT_OK(store->Insert(copied, nullptr));
  ASSERT_OK(store->Put(Record("c", 70)));
  std::vector<CandidateRecord> all = store->All();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].key(), "a");
  EXPECT_EQ(all[1].sequence(), 7);
  EXPECT_EQ(all[2].sequence(), 8) << "sequences go on after an inserted record";
  ASSERT_OK_AND_ASSIGN(Model back, store->LoadModel(*store->Find("a")));
  EXPECT_TRUE(back.NamedParameters()[0].second.equal(m.NamedParameters()[0].second));
  m.NamedParameters()[0].second.data().fill_(3);
  ASSERT_OK_AND_ASSIGN(Model again, store->LoadModel(*store->Find("a")));
  EXPECT_FALSE(again.NamedParameters()[0].second.equal(m.NamedParameters()[0].second)) << "a copy, not the caller's";
  EXPECT_THAT(store->LoadModel(*store->Find("b")), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no model")));
}

TEST(CandidateStore, DamagedRecordIsDataLossNamingTheFile) {
  const std::string dir = Dir("damaged");
  ASSERT_OK(CreateDirectories(dir));
  ASSERT_OK(WriteFileAtomically(dir + "/0000000000000001.pbtxt", "key: 'x' eval_metric: banana"));
  EXPECT_THAT(CandidateStore::Open(dir).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("0000000000000001.pbtxt\" is not a candidate record")));
  EXPECT_FALSE(CandidateStore::Open(dir + "/0000000000000001.pbtxt/sub").ok());  // a file in the way
}

TEST(CandidateStore, SigkillMidWriteLeavesOnlyCompleteRecords) {
  const std::string dir = Dir("killed");
  ASSERT_OK(CreateDirectories(dir));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = CandidateStore::Open(dir);
    if (!store.ok()) _exit(2);
    for (int i = 0;; ++i) {
      CandidateRecord r = Record(absl::StrCat("candidate ", i), i);
      r.set_description(std::string(64 * 1024, 'x'));  // large enough to be caught mid-write
      if (!(*store)->Put(r).ok()) _exit(3);
    }
  }
  // Let it write for a while, then kill it without warning.
  for (int waited = 0; waited < 200; ++waited) {
    usleep(10 * 1000);
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().extension() == ".pbtxt";
    if (n >= 20) break;
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the writer ended by itself: " << status;
  ASSERT_OK_AND_ASSIGN(auto store, CandidateStore::Open(dir));
  const std::vector<CandidateRecord> all = store->All();
  ASSERT_GE(all.size(), 20u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].key(), absl::StrCat("candidate ", i));  // no gaps, no torn record
    EXPECT_EQ(all[i].description().size(), 64u * 1024);
  }
}

}  // namespace
}  // namespace slimfit
