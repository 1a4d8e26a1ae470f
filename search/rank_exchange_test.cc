// rank_exchange: every rank gets every task's outcome in task order, each
// task made once by its own rank; statuses agree on the lowest failing
// rank's; rank 0's store reaches the others with models intact; a message
// that does not parse or claims another rank's task is DataLoss. Ranks are
// threads over an in-memory AllGather (and a scripted peer for bad
// messages).
#include "search/rank_exchange.h"

#include <ATen/Functions.h>
#include <torch/csrc/jit/api/module.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// AllGather among `world` threads (one generation per call).
class Rendezvous {
 public:
  explicit Rendezvous(int world) : world_(world), slots_(world) {}
  std::vector<std::string> Gather(int rank, const std::string& bytes) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t gen = generation_;
    slots_[rank] = bytes;
    if (++arrived_ == world_) {
      result_ = slots_;
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
    return result_;
  }

 private:
  const int world_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

class ThreadRank : public Collective {
 public:
  ThreadRank(Rendezvous* r, int rank, int world) : r_(r), rank_(rank), world_(world) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  absl::Status AllReduceSum(std::vector<at::Tensor>&) override { return absl::UnimplementedError("not used"); }
  absl::Status AllReduceMax(std::vector<at::Tensor>&) override { return absl::UnimplementedError("not used"); }
  absl::Status Broadcast(std::vector<at::Tensor>&, int) override { return absl::UnimplementedError("not used"); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override {
    return r_->Gather(rank_, bytes);
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  Rendezvous* r_;
  int rank_, world_;
};

// Rank 0 of two whose peer's contribution to the next AllGather is `peer`.
class ScriptedPeer : public Collective {
 public:
  explicit ScriptedPeer(std::string peer) : peer_(std::move(peer)) {}
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  absl::Status AllReduceSum(std::vector<at::Tensor>&) override { return absl::UnimplementedError("not used"); }
  absl::Status AllReduceMax(std::vector<at::Tensor>&) override { return absl::UnimplementedError("not used"); }
  absl::Status Broadcast(std::vector<at::Tensor>&, int) override { return absl::UnimplementedError("not used"); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override {
    return std::vector<std::string>{bytes, peer_};
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  std::string peer_;
};

// Runs fn(rank's collective) on `world` threads.
void OnRanks(int world, const std::function<void(Collective&)>& fn) {
  Rendezvous r(world);
  std::vector<std::thread> threads;
  for (int i = 0; i < world; ++i) {
    threads.emplace_back([&, i] {
      ThreadRank c(&r, i, world);
      fn(c);
    });
  }
  for (std::thread& t : threads) t.join();
}

CandidateRecord Rec(const std::string& key) {
  CandidateRecord r;
  r.set_key(key);
  r.set_eval_metric(0.5);
  return r;
}

Model Lenet() {
  absl::StatusOr<Model> m = CreateZooModel("lenet5");
  EXPECT_OK(m.status());
  return *std::move(m);
}

// Whether two models have the same parameters (names and values).
bool SameWeights(const Model& a, const Model& b) {
  auto pa = a.module().named_parameters(), pb = b.module().named_parameters();
  if (pa.size() != pb.size() || pa.size() == 0) return false;
  auto ia = pa.begin(), ib = pb.begin();
  for (; ia != pa.end(); ++ia, ++ib) {
    if ((*ia).name != (*ib).name || !at::equal((*ia).value, (*ib).value)) return false;
  }
  return true;
}

TEST(RankExchangeTest, OneRankRunsTheTasksHereAndReturnsItsOwnStatus) {
  LocalCollective one;
  std::vector<MakeRecord> tasks{[] {
                                  return absl::StatusOr<MadeRecord>(MadeRecord{Rec("a"), std::nullopt});
                                },
                                [] { return absl::StatusOr<MadeRecord>(absl::DataLossError("diverged")); }};
  ASSERT_OK_AND_ASSIGN(auto made, RunSpread(one, tasks));
  ASSERT_EQ(made.size(), 2u);
  ASSERT_OK(made[0].status());
  EXPECT_EQ(made[0]->record.key(), "a");
  EXPECT_THAT(made[1].status(), StatusIs(absl::StatusCode::kDataLoss, "diverged"));
  EXPECT_THAT(AgreeOnStatus(one, absl::InternalError("mine")), StatusIs(absl::StatusCode::kInternal, "mine"));
  EXPECT_OK(AgreeOnStatus(one, absl::OkStatus()));
}

TEST(RankExchangeTest, EveryRankGetsEveryOutcomeInTaskOrderEachMadeOnceByItsRank) {
  constexpr int kWorld = 2, kTasks = 5;
  const Model model = Lenet();
  std::atomic<int> runs[kTasks];
  for (auto& r : runs) r = 0;
  std::vector<std::vector<absl::StatusOr<MadeRecord>>> got(kWorld);
  std::vector<std::vector<int>> ran_on(kWorld);
  OnRanks(kWorld, [&](Collective& c) {
    std::vector<MakeRecord> tasks;
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back([&, i]() -> absl::StatusOr<MadeRecord> {
        ++runs[i];
        if (i == 3) return absl::DataLossError(absl::StrCat("task ", i, " diverged"));
        MadeRecord m{Rec(absl::StrCat("t", i, "@", c.rank())), std::nullopt};
        if (i == 0) {
          absl::StatusOr<Model> copy = model.Clone();
          if (!copy.ok()) return copy.status();
          m.model.emplace(*std::move(copy));
        }
        return m;
      });
    }
    absl::StatusOr<std::vector<absl::StatusOr<MadeRecord>>> r = RunSpread(c, tasks);
    ASSERT_OK(r.status());
    got[c.rank()] = *std::move(r);
  });
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(runs[i].load(), 1) << "task " << i;
  for (int rank = 0; rank < kWorld; ++rank) {
    ASSERT_EQ(got[rank].size(), static_cast<size_t>(kTasks)) << "rank " << rank;
    for (int i = 0; i < kTasks; ++i) {
      if (i == 3) {
        EXPECT_THAT(got[rank][i].status(), StatusIs(absl::StatusCode::kDataLoss, "task 3 diverged"));
        continue;
      }
      ASSERT_OK(got[rank][i].status());
      EXPECT_EQ(got[rank][i]->record.key(), absl::StrCat("t", i, "@", i % kWorld)) << "rank " << rank;
      EXPECT_EQ(got[rank][i]->model.has_value(), i == 0);
    }
    // Rank 1 received task 0's model as bytes: the same weights.
    ASSERT_TRUE(got[rank][0].ok() && got[rank][0]->model.has_value());
    EXPECT_TRUE(SameWeights(*got[rank][0]->model, model)) << "rank " << rank;
  }
}

TEST(RankExchangeTest, StatusesAgreeOnTheLowestFailingRank) {
  constexpr int kWorld = 3;
  std::vector<absl::Status> agreed(kWorld);
  OnRanks(kWorld, [&](Collective& c) {
    const absl::Status mine = c.rank() == 1   ? absl::InternalError("boom")
                              : c.rank() == 2 ? absl::NotFoundError("lost")
                                              : absl::OkStatus();
    agreed[c.rank()] = AgreeOnStatus(c, mine);
  });
  EXPECT_THAT(agreed[0], StatusIs(absl::StatusCode::kInternal, "rank 1: boom"));
  EXPECT_THAT(agreed[1], StatusIs(absl::StatusCode::kInternal, "boom"));
  EXPECT_THAT(agreed[2], StatusIs(absl::StatusCode::kInternal, "rank 1: boom"));
  std::vector<absl::Status> all_ok(2);
  OnRanks(2, [&](Collective& c) { all_ok[c.rank()] = AgreeOnStatus(c, absl::OkStatus()); });
  EXPECT_OK(all_ok[0]);
  EXPECT_OK(all_ok[1]);
}

TEST(RankExchangeTest, RootsRecordsAndModelsReachEveryRank) {
  const Model model = Lenet();
  std::vector<std::unique_ptr<CandidateStore>> stores;
  for (int i = 0; i < 2; ++i) stores.push_back(CandidateStore::InMemory());
  ASSERT_OK(stores[0]->Put(Rec("plain"), nullptr));
  ASSERT_OK(stores[0]->Put(Rec("with_model"), &model));
  std::vector<absl::Status> done(2);
  OnRanks(2, [&](Collective& c) { done[c.rank()] = ShareRootStore(c, *stores[c.rank()]); });
  ASSERT_OK(done[0]);
  ASSERT_OK(done[1]);
  const std::vector<CandidateRecord> sent = stores[0]->All(), received = stores[1]->All();
  ASSERT_EQ(received.size(), 2u);
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(received[i].key(), sent[i].key());
    EXPECT_EQ(received[i].sequence(), sent[i].sequence());
  }
  ASSERT_OK_AND_ASSIGN(Model back, stores[1]->LoadModel(*stores[1]->Find("with_model")));
  EXPECT_TRUE(SameWeights(back, model));
  EXPECT_THAT(stores[1]->LoadModel(*stores[1]->Find("plain")).status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(RankExchangeTest, AMessageThatDoesNotParseOrClaimsAnotherRanksTaskIsDataLoss) {
  std::vector<MakeRecord> tasks(3, [] { return absl::StatusOr<MadeRecord>(MadeRecord{Rec("x"), std::nullopt}); });
  ScriptedPeer garbage(std::string("\xff\xff\xff", 3));
  EXPECT_THAT(RunSpread(garbage, tasks).status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("does not parse")));
  RankMessage wrong;  // rank 1 owns tasks 1 (of 3); 2 is rank 0's
  wrong.add_records()->set_task(2);
  ScriptedPeer thief(wrong.SerializeAsString());
  EXPECT_THAT(RunSpread(thief, tasks).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("rank 1 sent task 2 of 3")));
  ScriptedPeer silent("");  // rank 1 sent nothing for its task 1
  EXPECT_THAT(RunSpread(silent, tasks).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no rank sent task 1")));
  ScriptedPeer bad_status(std::string("\x08", 1));  // a truncated varint
  EXPECT_THAT(AgreeOnStatus(bad_status, absl::OkStatus()),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("rank 1's message does not parse")));
}

}  // namespace
}  // namespace slimfit
