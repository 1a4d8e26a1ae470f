#include "data/image_folder_index.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace slimfit {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "slimfit-image-index 1";

struct Scan {
  ImageFolderListing listing;
  std::vector<std::pair<std::string, int64_t>> dirs;  // every directory read, with its mtime
};

bool Hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

absl::StatusOr<int64_t> MtimeNs(const std::string& dir) {
  std::error_code ec;
  const auto t = fs::last_write_time(dir, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("\"", dir, "\": ", ec.message()));
  return static_cast<int64_t>(t.time_since_epoch().count());
}

absl::Status AddDir(const std::string& dir, Scan& scan) {
  absl::StatusOr<int64_t> t = MtimeNs(dir);
  if (!t.ok()) return t.status();
  scan.dirs.emplace_back(dir, *t);
  return absl::OkStatus();
}

// Immediate subdirectories (following symlinks), sorted, hidden ones left out.
absl::StatusOr<std::vector<std::string>> Subdirectories(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!Hidden(it->path()) && it->is_directory(type_ec)) out.push_back(it->path().filename().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("reading \"", dir, "\": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

// torchvision: for root, _, files in sorted(os.walk(class_dir, followlinks=True)): for f in sorted(files).
absl::Status ListClass(const std::string& class_dir, ImageFolderListing::Class& cls, Scan& scan) {
  std::map<std::string, std::vector<std::string>> by_dir;  // relative dir → file names
  std::vector<std::string> pending = {""};
  while (!pending.empty()) {
    const std::string rel = pending.back();
    pending.pop_back();
    const std::string abs = rel.empty() ? class_dir : class_dir + "/" + rel;
    if (absl::Status s = AddDir(abs, scan); !s.ok()) return s;
    auto& files = by_dir[rel];
    std::error_code ec;
    for (fs::directory_iterator it(abs, ec), end; !ec && it != end; it.increment(ec)) {
      if (Hidden(it->path())) continue;
      const std::string name = it->path().filename().string();
      std::error_code type_ec;
      if (it->is_directory(type_ec)) {
        pending.push_back(rel.empty() ? name : rel + "/" + name);
      } else if (it->is_regular_file(type_ec)) {
        files.push_back(name);
      }
    }
    if (ec) return absl::NotFoundError(absl::StrCat("reading \"", abs, "\": ", ec.message()));
  }
  // os.walk's root paths sort as strings: the class folder itself ("") first.
  for (auto& [rel, files] : by_dir) {
    std::sort(files.begin(), files.end());
    for (const auto& f : files) cls.files.push_back(rel.empty() ? f : rel + "/" + f);
  }
  return absl::OkStatus();
}

absl::StatusOr<Scan> ScanFolder(const std::string& root) {
  Scan scan;
  scan.listing.root = root;
  if (absl::Status s = AddDir(root, scan); !s.ok()) return s;
  std::error_code ec;
  const bool split_layout = fs::is_directory(root + "/train", ec);
  for (const char* name : {"train", "val", "test"}) {
    const std::string folder = split_layout ? root + "/" + name : root;
    if (split_layout && !fs::is_directory(folder, ec)) continue;
    ImageFolderListing::Split split;
    split.name = name;
    split.folder = folder;
    if (split_layout) {
      if (absl::Status s = AddDir(folder, scan); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<std::string>> classes = Subdirectories(folder);
    if (!classes.ok()) return classes.status();
    for (const auto& c : *classes) {
      ImageFolderListing::Class cls;
      cls.name = c;
      if (absl::Status s = ListClass(folder + "/" + c, cls, scan); !s.ok()) return s;
      split.classes.push_back(std::move(cls));
    }
    scan.listing.splits.push_back(std::move(split));
    if (!split_layout) break;
  }
  return scan;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string CachePath(const std::string& cache_dir, const std::string& root) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Fnv1a(root)));  // NOLINT
  return absl::StrCat(cache_dir, "/", hex, ".index");
}

// Lines: the magic; "root\t<root>"; "dir\t<mtime>\t<path>" per directory;
// "split\t<name>\t<folder>"; "class\t<name>"; "file\t<relative path>".
std::string Serialize(const Scan& scan) {
  std::string out = absl::StrCat(kMagic, "\nroot\t", scan.listing.root, "\n");
  for (const auto& [dir, t] : scan.dirs) absl::StrAppend(&out, "dir\t", t, "\t", dir, "\n");
  for (const auto& split : scan.listing.splits) {
    absl::StrAppend(&out, "split\t", split.name, "\t", split.folder, "\n");
    for (const auto& cls : split.classes) {
      absl::StrAppend(&out, "class\t", cls.name, "\n");
      for (const auto& f : cls.files) absl::StrAppend(&out, "file\t", f, "\n");
    }
  }
  return out;
}

bool Serializable(const Scan& scan) {
  auto ok = [](const std::string& s) { return s.find_first_of("\t\n") == std::string::npos; };
  for (const auto& [dir, t] : scan.dirs) {
    if (!ok(dir)) return false;
  }
  for (const auto& split : scan.listing.splits) {
    for (const auto& cls : split.classes) {
      for (const auto& f : cls.files) {
        if (!ok(f)) return false;
      }
    }
  }
  return true;
}

// The cached listing if it is for `root` and no directory changed since.
std::optional<ImageFolderListing> ReadCache(const std::string& path, const std::string& root) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return std::nullopt;
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n', absl::SkipEmpty());
  if (lines.size() < 2 || lines[0] != kMagic || lines[1] != absl::StrCat("root\t", root)) return std::nullopt;
  ImageFolderListing l;
  l.root = root;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], absl::MaxSplits('\t', 2));
    if (f[0] == "dir" && f.size() == 3) {
      int64_t t = 0;
      absl::StatusOr<int64_t> now = MtimeNs(f[2]);
      if (!absl::SimpleAtoi(f[1], &t) || !now.ok() || *now != t) return std::nullopt;
    } else if (f[0] == "split" && f.size() == 3) {
      l.splits.push_back({f[1], f[2], {}});
    } else if (f[0] == "class" && f.size() == 2 && !l.splits.empty()) {
      l.splits.back().classes.push_back({f[1], {}});
    } else if (f[0] == "file" && f.size() == 2 && !l.splits.empty() && !l.splits.back().classes.empty()) {
      l.splits.back().classes.back().files.push_back(f[1]);
    } else {
      return std::nullopt;  // not ours, or torn: rebuild
    }
  }
  l.from_cache = true;
  return l;
}

}  // namespace

std::string DefaultImageIndexCacheDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/slimfit/image_index");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "/tmp", "/.cache/slimfit/image_index");
}

absl::StatusOr<ImageFolderListing> ListImageFolder(const std::string& root_in, const std::string& cache_dir) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(root_in, ec);
  if (ec || !fs::is_directory(canonical, ec)) {
    return absl::NotFoundError(
        absl::StrCat("\"", root_in, "\" is not a directory", ec ? absl::StrCat(" (", ec.message(), ")") : ""));
  }
  const std::string root = canonical.string();
  const std::string cache = cache_dir.empty() ? "" : CachePath(cache_dir, root);
  if (!cache.empty()) {
    if (std::optional<ImageFolderListing> cached = ReadCache(cache, root)) return *std::move(cached);
  }
  absl::StatusOr<Scan> scan = ScanFolder(root);
  if (!scan.ok()) return scan.status();
  if (!cache.empty() && Serializable(*scan)) {
    absl::Status s = CreateDirectories(cache_dir);
    if (s.ok()) s = WriteFileAtomically(cache, Serialize(*scan));
    if (!s.ok())
      std::fprintf(stderr, "slimfit: not caching the index of \"%s\": %s\n", root.c_str(),
                   std::string(s.message()).c_str());
  }
  return std::move(scan->listing);
}

}  // namespace slimfit
