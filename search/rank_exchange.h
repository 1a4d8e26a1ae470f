// File: search/rank_exchange.h
//
// What the ranks of a distributed search say to each other: the engine's
// three exchanges, on search_state.proto's RankStatus / RankMessage (binary
// protos over Collective::AllGather), so no rank hand-packs bytes.
//
//   RETURN_IF_ERROR(AgreeOnStatus(group, mine));       // one outcome for all
//   ASSIGN_OR_RETURN(auto made, RunSpread(group, tasks));  // task i on rank i % W
//   RETURN_IF_ERROR(ShareRootStore(group, store));     // rank 0's records to all
//
// Contract: collectives (distributed/collective.h) — every rank calls the
// same function in the same order. With one rank each is the identity (the
// tasks run here, the status is returned as is). A message from another
// rank that does not parse is DataLoss naming the exchange; no exception
// escapes.
#ifndef SLIMFIT_SEARCH_RANK_EXCHANGE_H_
#define SLIMFIT_SEARCH_RANK_EXCHANGE_H_

#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/collective.h"
#include "model/model.h"
#include "search/candidate_store.h"
#include "search/search_state.pb.h"

namespace slimfit {

// A record and the model kept with it (none for records without one).
struct MadeRecord {
  CandidateRecord record;
  std::optional<Model> model;
};

// `mine` on the rank whose own status it is; on every rank the first
// failure of any rank (lowest rank first; another rank's message prefixed
// "rank r: ", its code kept), or OK when every rank is OK.
absl::Status AgreeOnStatus(Collective& group, const absl::Status& mine);

// Task i runs on rank i % world_size; every rank gets every task's outcome,
// in task order: the record (and model) its rank made, or the status it
// failed with. A model that cannot be serialized fails its task.
using MakeRecord = std::function<absl::StatusOr<MadeRecord>()>;
absl::StatusOr<std::vector<absl::StatusOr<MadeRecord>>> RunSpread(Collective& group,
                                                                  const std::vector<MakeRecord>& tasks);

// Rank 0's records and their models into every other rank's `store`
// (Insert: sequences kept). A no-op on rank 0.
absl::Status ShareRootStore(Collective& group, CandidateStore& store);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_RANK_EXCHANGE_H_
