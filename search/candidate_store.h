// File: search/candidate_store.h
//
// CandidateStore: the search's memory of scored candidates, on disk, so no
// candidate is computed twice and a run killed at any moment (SIGKILL
// included) resumes from the last completed one.
//
//   ASSIGN_OR_RETURN(auto store, CandidateStore::Open("runs/x/state/candidates"));
//   if (const CandidateRecord* done = store->Find(key)) { ... reuse ... }
//   RETURN_IF_ERROR(store->Put(record, &model));    // model first, then the record
//
// Contract: one text-proto file per record (<hash of key>.pbtxt) and its
// model (<hash>.pt), each written atomically (temporary file, fsync,
// rename): after a kill, a record is either absent or complete, and a
// record's model exists whenever the record does. Open reads every record
// and ignores temporaries and models without a record; a record file that
// does not parse is DataLoss naming it. Put of an existing key replaces it.
// InMemory() keeps the same in memory (the copies other ranks of a
// distributed search hold; rank 0's is on disk). Not thread-safe.
#ifndef SLIMFIT_SEARCH_CANDIDATE_STORE_H_
#define SLIMFIT_SEARCH_CANDIDATE_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model.h"
#include "search/search_state.pb.h"

namespace slimfit {

class CandidateStore {
 public:
  // Creates `dir` if needed.
  static absl::StatusOr<std::unique_ptr<CandidateStore>> Open(const std::string& dir);
  // A store that writes nothing.
  static std::unique_ptr<CandidateStore> InMemory();

  // The record for `key`, or null.
  const CandidateRecord* Find(const std::string& key) const;
  // Stores `record` (its sequence and model_file are assigned here) and, if
  // given, `model`.
  absl::Status Put(CandidateRecord record, const Model* model = nullptr);
  // Stores a copy of another store's record as it is (sequence kept).
  absl::Status Insert(CandidateRecord record, const Model* model);
  // Every record, in completion order.
  std::vector<CandidateRecord> All() const;
  // The model kept with `record`; NotFound if none was kept.
  absl::StatusOr<Model> LoadModel(const CandidateRecord& record) const;

  const std::string& dir() const { return dir_; }  // empty: in memory

 private:
  explicit CandidateStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Store(CandidateRecord record, const Model* model);
  std::string dir_;
  std::map<std::string, Model> models_;  // in memory: by key
  std::map<std::string, CandidateRecord> records_;  // by key
  int64_t next_sequence_ = 1;
};

// A stable file-name stem for `key` (16 hex digits of FNV-1a).
std::string CandidateFileStem(const std::string& key);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_CANDIDATE_STORE_H_
