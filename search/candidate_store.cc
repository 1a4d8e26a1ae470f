#include "search/candidate_store.h"

#include <dirent.h>

#include <algorithm>

#include <google/protobuf/text_format.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace slimfit {

std::string CandidateFileStem(const std::string& key) {
  return absl::StrFormat("%016x", Fnv1a(key.data(), key.size()));
}

absl::StatusOr<std::unique_ptr<CandidateStore>> CandidateStore::Open(const std::string& dir) {
  RETURN_IF_ERROR(CreateDirectories(dir));
  std::unique_ptr<CandidateStore> store(new CandidateStore(dir));
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::PermissionDeniedError(absl::StrCat("candidate store: cannot list \"", dir, "\""));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    // Records only: temporaries start with '.', models end in .pt.
    if (!name.empty() && name[0] != '.' && absl::EndsWith(name, ".pbtxt")) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    CandidateRecord r;
    if (!google::protobuf::TextFormat::ParseFromString(text, &r) || r.key().empty()) {
      return absl::DataLossError(absl::StrCat("candidate store: \"", path,
                                              "\" is not a candidate record (delete it to recompute that candidate)"));
    }
    store->next_sequence_ = std::max(store->next_sequence_, r.sequence() + 1);
    store->records_[r.key()] = std::move(r);
  }
  return store;
}

const CandidateRecord* CandidateStore::Find(const std::string& key) const {
  auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

std::unique_ptr<CandidateStore> CandidateStore::InMemory() {
  return std::unique_ptr<CandidateStore>(new CandidateStore(""));
}

absl::Status CandidateStore::Put(CandidateRecord record, const Model* model) {
  record.set_sequence(next_sequence_);
  return Store(std::move(record), model);
}

absl::Status CandidateStore::Insert(CandidateRecord record, const Model* model) { return Store(std::move(record), model); }

absl::Status CandidateStore::Store(CandidateRecord record, const Model* model) {
  if (record.key().empty()) return absl::InvalidArgumentError("candidate store: a record needs a key");
  const std::string stem = CandidateFileStem(record.key());
  record.clear_model_file();
  if (model != nullptr) {
    if (dir_.empty()) {
      ASSIGN_OR_RETURN(Model copy, model->Clone());
      models_.insert_or_assign(record.key(), std::move(copy));
    } else {
      RETURN_IF_ERROR(model->Save(absl::StrCat(dir_, "/", stem, ".pt")));
    }
    record.set_model_file(absl::StrCat(stem, ".pt"));
  }
  if (!dir_.empty()) {
    std::string text;
    if (!google::protobuf::TextFormat::PrintToString(record, &text)) {
      return absl::InternalError("candidate store: cannot print a record");
    }
    RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir_, "/", stem, ".pbtxt"), text));
  }
  next_sequence_ = std::max(next_sequence_, record.sequence() + 1);
  records_[record.key()] = std::move(record);
  return absl::OkStatus();
}

std::vector<CandidateRecord> CandidateStore::All() const {
  std::vector<CandidateRecord> out;
  out.reserve(records_.size());
  for (const auto& [key, r] : records_) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const CandidateRecord& a, const CandidateRecord& b) { return a.sequence() < b.sequence(); });
  return out;
}

absl::StatusOr<Model> CandidateStore::LoadModel(const CandidateRecord& record) const {
  if (record.model_file().empty()) {
    return absl::NotFoundError(absl::StrCat("candidate store: no model kept for \"", record.description(), "\""));
  }
  if (dir_.empty()) {
    auto it = models_.find(record.key());
    if (it == models_.end()) return absl::NotFoundError(absl::StrCat("candidate store: no model for \"", record.key(), "\""));
    return it->second.Clone();
  }
  return Model::Load(absl::StrCat(dir_, "/", record.model_file()));
}

}  // namespace slimfit
