// One rank of the 2-process tests in distributed_test.cc (started by
// LaunchLocal with torchrun's environment; without WORLD_SIZE it is the
// single process).
//
//   dp_worker collectives OUT        sum, max, broadcast, all-gather, barrier
//   dp_worker train MODEL OUT        2 epochs of data-parallel SGD (lenet5: no
//                                    batch norm; resnet_small: with), rank 0
//                                    writes OUT/model.pt, each rank OUT/rank<r>.txt
//   dp_worker die OUT                rank 1 exits at once; rank 0's next
//                                    collective must fail: OUT/error.txt
//   dp_worker slow OUT               a 2 s group timeout; rank 1 naps 5 s
//                                    (a hung rank): rank 0's gather times
//                                    out: OUT/slow.txt
//   dp_worker bench MODEL OUT        2 epochs on 12,000 Fashion-MNIST images
//                                    (Debian's), batch 128, no evaluation;
//                                    OUT/rank0.txt: seconds per epoch and
//                                    all-reduce time per step (the benchmark)
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/text_proto.h"
#include "data/data_loader.h"
#include "data/sharded_loader.h"
#include "data/splits.h"
#include "distributed/process_group.h"
#include "evaluators/evaluation_function.h"
#include "losses/loss_function.h"
#include "model/zoo/zoo.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "dp_worker: %s\n", s.ToString().c_str());
  return 1;
}

int Collectives(Collective& g, const std::string& out) {
  const int r = g.rank();
  std::vector<at::Tensor> t{at::full({3}, static_cast<float>(r + 1)), at::full({2}, static_cast<double>(r))};
  if (auto s = g.AllReduceSum(t); !s.ok()) return Fail(s);
  std::vector<at::Tensor> m{at::full({1}, static_cast<int64_t>(10 * r), at::kLong)};
  if (auto s = g.AllReduceMax(m); !s.ok()) return Fail(s);
  std::vector<at::Tensor> b{at::full({2}, static_cast<float>(r == 1 ? 7 : 0))};
  if (auto s = g.Broadcast(b, 1); !s.ok()) return Fail(s);
  auto gathered = g.AllGather(std::string(r + 2, static_cast<char>('a' + r)));
  if (!gathered.ok()) return Fail(gathered.status());
  if (auto s = g.Barrier(); !s.ok()) return Fail(s);
  std::ofstream f(absl::StrFormat("%s/rank%d.txt", out, r));
  f << absl::StrFormat("sum %g %g\nmax %d\nbroadcast %g\ngather", t[0][0].item<float>(), t[1][0].item<double>(),
                       m[0][0].item<int64_t>(), b[0][1].item<float>());
  for (const std::string& s : *gathered) f << " " << s;
  f << "\n";
  return 0;
}

int Train(Collective* g, const std::string& model_name, const std::string& out, bool bench) {
  const int rank = g ? g->rank() : 0, world = g ? g->world_size() : 1;
  DataConfig dc;
  if (auto s = ParseTextProto(bench ? "mnist {} max_train_samples: 12000 max_eval_samples: 500 train_batch_size: 128 "
                                      "seed: 1"
                                    : "synthetic { train_samples: 200 test_samples: 64 shape: [1, 12, 12] "
                                      "num_classes: 4 noise: 1.5 } train_batch_size: 24 eval_batch_size: 20 seed: 1",
                              "data", &dc);
      !s.ok()) {
    return Fail(s);
  }
  auto splits = LoadSplits(dc);
  if (!splits.ok()) return Fail(splits.status());
  auto train = MakeLoader(dc, *splits, "train");
  auto val = MakeLoader(dc, *splits, "val");
  auto val2 = MakeLoader(dc, *splits, "val");
  if (!train.ok() || !val.ok() || !val2.ok()) return Fail(absl::InternalError("loaders"));
  std::unique_ptr<DataLoader> train_loader = std::move(*train), eval_shard;
  if (world > 1) {
    train_loader = ShardedLoader::Create(std::move(train_loader), rank, world).value();
    eval_shard = ShardedLoader::Create(std::move(*val2), rank, world).value();
  }
  const int64_t side = bench ? 28 : 12, classes = bench ? 10 : 4;
  auto model = CreateZooModel(model_name, ZooOptions{.height = side, .width = side, .num_classes = classes,
                                                     .seed = static_cast<uint64_t>(rank)});  // rank 0's wins
  if (!model.ok()) return Fail(model.status());
  auto fp = std::make_shared<ForwardPass>();
  LossConfig lc;
  lc.mutable_cross_entropy();
  auto loss = MakeLoss(lc, LossContext{fp}).value();
  EvaluationConfig ec;
  if (auto s = ParseTextProto("evaluators { accuracy {} } evaluators { mean_loss { loss { cross_entropy {} } } }",
                              "eval", &ec);
      !s.ok()) {
    return Fail(s);
  }
  auto eval = MakeEvaluator(ec, EvaluatorContext{fp}).value();
  TrainerConfig tc;
  if (auto s = ParseTextProto(absl::StrFormat("optimizer { sgd { momentum: 0.9 } lr: 0.05 weight_decay: 0.0001 } "
                                              "epochs: 2 progress: NONE keep_best: false metrics_path: \"%s\"",
                                              out + "/metrics.jsonl"),
                              "trainer", &tc);
      !s.ok()) {
    return Fail(s);
  }
  TrainerDeps deps{loss.get(), eval.get(), train_loader.get(), bench ? nullptr : val->get()};
  deps.group = g;
  deps.eval_shard = bench ? nullptr : eval_shard.get();
  auto trainer = Trainer::Create(tc, deps);
  if (!trainer.ok()) return Fail(trainer.status());
  auto r = (*trainer)->Train(*model);
  if (!r.ok()) return Fail(r.status());
  if (bench) {
    std::ofstream f(absl::StrFormat("%s/rank%d.txt", out, rank));
    f << absl::StrFormat("%.6f %.6f %d\n", r->seconds / r->epochs_run,
                         r->syncs ? 1e3 * r->sync_seconds / r->syncs : 0.0, r->steps);
    return 0;
  }
  if (rank == 0) {
    if (auto s = model->Save(out + "/model.pt"); !s.ok()) return Fail(s);
  }
  std::ofstream f(absl::StrFormat("%s/rank%d.txt", out, rank));
  f << absl::StrFormat("accuracy %.17g\nloss %.17g\nsteps %d\nsyncs %d\n", r->last.Get("accuracy")->value,
                       r->last.Get("loss")->value, r->steps, r->syncs);
  return 0;
}

int Die(Collective& g, const std::string& out) {
  if (g.rank() == 1) return 3;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<at::Tensor> t{at::ones({4})};
  absl::Status s = g.AllReduceSum(t);
  for (int i = 0; s.ok() && i < 100; ++i) s = g.AllReduceSum(t);  // the first may still complete
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ofstream f(out + "/error.txt");
  f << absl::StrFormat("%s\n%.3f\n", s.ToString(), secs);
  return s.ok() ? 1 : 0;
}

int Slow(Collective& g, const std::string& out) {
  if (g.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5000));
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto gathered = g.AllGather("y");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ofstream f(out + "/slow.txt");
  f << absl::StrFormat("%s\n%.3f\n", gathered.status().ToString(), secs);
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 3) return Fail(absl::InvalidArgumentError("usage: dp_worker collectives|train|die [MODEL] OUT"));
  const std::string mode = argv[1];
  auto env = DistributedOptionsFromEnvironment();
  if (!env.ok()) return Fail(env.status());
  std::unique_ptr<ProcessGroup> group;
  if (*env && (*env)->world_size > 1) {
    (*env)->timeout_seconds = mode == "slow" ? 2 : 60;
    (*env)->rendezvous_timeout_seconds = 60;
    auto g = ProcessGroup::Connect(**env);
    if (!g.ok()) return Fail(g.status());
    group = std::move(*g);
  }
  if (mode == "collectives" && group) return Collectives(*group, argv[2]);
  if (mode == "die" && group) return Die(*group, argv[2]);
  if (mode == "slow" && group) return Slow(*group, argv[2]);
  if ((mode == "train" || mode == "bench") && argc == 4) return Train(group.get(), argv[2], argv[3], mode == "bench");
  return Fail(absl::InvalidArgumentError(absl::StrCat("dp_worker: bad arguments for mode ", mode)));
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) { return slimfit::Main(argc, argv); }
