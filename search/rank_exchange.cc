#include "search/rank_exchange.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace slimfit {
namespace {

RankStatus ToRankStatus(const absl::Status& s) {
  RankStatus out;
  out.set_code(static_cast<int>(s.code()));
  out.set_message(std::string(s.message()));
  return out;
}

absl::Status FromRankStatus(const RankStatus& s, const std::string& prefix) {
  if (s.code() == 0) return absl::OkStatus();
  const int code = s.code() > 0 && s.code() <= static_cast<int>(absl::StatusCode::kUnauthenticated)
                       ? s.code()
                       : static_cast<int>(absl::StatusCode::kUnknown);
  return absl::Status(static_cast<absl::StatusCode>(code), absl::StrCat(prefix, s.message()));
}

absl::StatusOr<RankMessage> ParseMessage(const std::string& bytes, const std::string& what) {
  RankMessage m;
  if (!m.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat(what, ": a message from another rank does not parse (", bytes.size(), " bytes)"));
  }
  return m;
}

absl::StatusOr<MadeRecord> FromRankRecord(RankRecord& r, const std::string& what) {
  MadeRecord out;
  out.record = std::move(*r.mutable_record());
  if (!r.model().empty()) {
    ASSIGN_OR_RETURN(Model m, Model::FromBytes(r.model()), absl::StrCat(what, ": a model from another rank"));
    out.model.emplace(std::move(m));
  }
  return out;
}

// `made` as a RankRecord (a model that does not serialize fails the task).
RankRecord ToRankRecord(uint64_t task, absl::StatusOr<MadeRecord> made) {
  RankRecord r;
  r.set_task(task);
  if (made.ok() && made->model) {
    absl::StatusOr<std::string> bytes = made->model->ToBytes();
    if (bytes.ok()) {
      r.set_model(*std::move(bytes));
    } else {
      made = bytes.status();
    }
  }
  if (made.ok()) {
    *r.mutable_record() = std::move(made->record);
  } else {
    *r.mutable_status() = ToRankStatus(made.status());
  }
  return r;
}

}  // namespace

absl::Status AgreeOnStatus(Collective& group, const absl::Status& mine) {
  if (group.world_size() <= 1) return mine;
  RankStatus s = ToRankStatus(mine);
  ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(mine.ok() ? std::string() : s.SerializeAsString()),
                   "sharing a status");
  for (int r = 0; r < static_cast<int>(all.size()); ++r) {
    if (all[r].empty()) continue;
    if (r == group.rank()) return mine;
    RankStatus theirs;
    if (!theirs.ParseFromString(all[r]) || theirs.code() == 0) {
      return absl::DataLossError(absl::StrCat("sharing a status: rank ", r, "'s message does not parse"));
    }
    return FromRankStatus(theirs, absl::StrCat("rank ", r, ": "));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<absl::StatusOr<MadeRecord>>> RunSpread(Collective& group,
                                                                  const std::vector<MakeRecord>& tasks) {
  std::vector<absl::StatusOr<MadeRecord>> out;
  if (group.world_size() <= 1) {
    for (const MakeRecord& make : tasks) out.push_back(make());
    return out;
  }
  const size_t world = group.world_size(), rank = group.rank();
  RankMessage mine;
  for (size_t i = rank; i < tasks.size(); i += world) *mine.add_records() = ToRankRecord(i, tasks[i]());
  // Ranks finish their tasks at different times: the group's timeout must
  // exceed a candidate's fine-tune (a rank that dies still ends the wait).
  ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(mine.SerializeAsString()), "gathering candidates");
  std::vector<std::optional<absl::StatusOr<MadeRecord>>> by_task(tasks.size());
  for (size_t r = 0; r < all.size(); ++r) {
    ASSIGN_OR_RETURN(RankMessage m, ParseMessage(all[r], "gathering candidates"));
    for (RankRecord& rec : *m.mutable_records()) {
      if (rec.task() >= tasks.size() || rec.task() % world != r || by_task[rec.task()].has_value()) {
        return absl::DataLossError(absl::StrCat("gathering candidates: rank ", r, " sent task ", rec.task(), " of ",
                                                tasks.size(), ", not one of its own"));
      }
      const absl::Status st = FromRankStatus(rec.status(), "");
      if (st.ok()) {
        by_task[rec.task()] = FromRankRecord(rec, "gathering candidates");
        if (!by_task[rec.task()]->ok()) return by_task[rec.task()]->status();
      } else {
        by_task[rec.task()] = st;
      }
    }
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (!by_task[i].has_value()) {
      return absl::DataLossError(absl::StrCat("gathering candidates: no rank sent task ", i, " of ", tasks.size()));
    }
    out.push_back(*std::move(by_task[i]));
  }
  return out;
}

absl::Status ShareRootStore(Collective& group, CandidateStore& store) {
  if (group.world_size() <= 1) return absl::OkStatus();
  RankMessage mine;
  if (group.is_root()) {
    for (const CandidateRecord& r : store.All()) {
      RankRecord* out = mine.add_records();
      *out->mutable_record() = r;
      if (!r.model_file().empty()) {
        ASSIGN_OR_RETURN(Model m, store.LoadModel(r), "sending rank 0's records");
        ASSIGN_OR_RETURN(*out->mutable_model(), m.ToBytes(), "sending rank 0's records");
      }
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(group.is_root() ? mine.SerializeAsString() : ""),
                   "sending rank 0's records");
  if (group.is_root()) return absl::OkStatus();
  ASSIGN_OR_RETURN(RankMessage root, ParseMessage(all[0], "sending rank 0's records"));
  for (RankRecord& r : *root.mutable_records()) {
    ASSIGN_OR_RETURN(MadeRecord got, FromRankRecord(r, "sending rank 0's records"));
    RETURN_IF_ERROR(store.Insert(std::move(got.record), got.model ? &*got.model : nullptr));
  }
  return absl::OkStatus();
}

}  // namespace slimfit
