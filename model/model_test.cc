#include "model/model.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>

#include <filesystem>
#include <string>

#include "common/file_size_limit.h"
#include "common/files.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_zip.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

at::Tensor Forward(Model& m, const at::Tensor& x) { return m.module().forward({x}).toTensor(); }

TEST(ModelTest, SaveLoadRoundTripKeepsOutputsAndMetadata) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("resnet_small"));
  m.Eval();
  const at::Tensor x = at::randn({2, 1, 28, 28});
  const at::Tensor y = Forward(m, x);
  const std::string path = TempPath("resnet.pt");
  ASSERT_OK(m.Save(path));
  ASSERT_OK_AND_ASSIGN(Model back, Model::Load(path));
  back.Eval();
  EXPECT_TRUE(Forward(back, x).equal(y));
  EXPECT_EQ(back.metadata().name(), "resnet_small");
  EXPECT_EQ(back.metadata().num_classes(), 10);
  EXPECT_THAT(FirstInputShape(back.metadata()), ElementsAre(1, 1, 28, 28));
  EXPECT_EQ(back.NumParameters(), m.NumParameters());
}

TEST(ModelTest, BytesRoundTripIsTheArchiveSaveWrites) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  m.Eval();
  const at::Tensor x = at::randn({2, 1, 28, 28});
  ASSERT_OK_AND_ASSIGN(std::string bytes, m.ToBytes());
  ASSERT_OK_AND_ASSIGN(Model back, Model::FromBytes(bytes));
  back.Eval();
  EXPECT_TRUE(Forward(back, x).equal(Forward(m, x)));
  EXPECT_EQ(back.metadata().name(), "lenet5");
  const std::string path = TempPath("from_bytes.pt");
  ASSERT_OK(WriteFileAtomically(path, bytes));
  EXPECT_OK(Model::Load(path).status()) << "the bytes are a loadable archive";
  EXPECT_THAT(Model::FromBytes(bytes.substr(0, bytes.size() / 2)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("deserializing model")));
}

TEST(ModelTest, SaveReplacesAtomicallyAndLeavesNoTemporary) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  const std::string dir = TempPath("atomic");
  ASSERT_OK(CreateDirectories(dir));
  ASSERT_OK(m.Save(dir + "/m.pt"));
  ASSERT_OK(m.Save(dir + "/m.pt"));
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

// The disk fills up half-way through the archive (a real failing write():
// RLIMIT_FSIZE): the error names the file and the cause, the previous model
// is untouched and still loads, nothing half-written is left.
TEST(ModelTest, SaveThatRunsOutOfSpaceKeepsThePreviousModel) {
  ASSERT_OK_AND_ASSIGN(Model small, CreateZooModel("lenet5"));
  ASSERT_OK_AND_ASSIGN(Model big, CreateZooModel("vgg_small"));
  const std::string dir = TempPath("full");
  ASSERT_OK(CreateDirectories(dir));
  const std::string path = dir + "/model.pt";
  ASSERT_OK(small.Save(path));
  ASSERT_OK_AND_ASSIGN(const int64_t before, RegularFileSize(path));
  EXPECT_THAT(RunWithFileSizeLimit(before + 4096, [&] { return big.Save(path); }),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("saving model to \"" + path), HasSubstr("File too large"))));
  ASSERT_OK_AND_ASSIGN(Model again, Model::Load(path));
  EXPECT_EQ(RegularFileSize(path).value(), before);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
}

TEST(ModelTest, SaveIntoMissingDirectoryFailsCleanly) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  EXPECT_THAT(m.Save(TempPath("no/such/dir/m.pt")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("saving model to")));
}

TEST(ModelTest, LoadMissingFileIsNotFound) {
  EXPECT_THAT(Model::Load(TempPath("absent.pt")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.pt")));
}

TEST(ModelTest, LoadTruncatedModelIsAClearError) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("vgg_small"));
  const std::string path = TempPath("full.pt");
  ASSERT_OK(m.Save(path));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(path));
  for (size_t keep : {bytes.size() / 2, bytes.size() - 10, size_t{3}}) {
    const std::string cut = TempPath("cut.pt");
    ASSERT_OK(WriteFileAtomically(cut, bytes.substr(0, keep)));
    EXPECT_THAT(Model::Load(cut), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("cut.pt")))
        << "kept " << keep << " of " << bytes.size() << " bytes";
  }
}

TEST(ModelTest, LoadNonTorchScriptFilesIsAClearError) {
  const std::string text = TempPath("notes.pt");
  ASSERT_OK(WriteFileAtomically(text, "not a model"));
  EXPECT_THAT(Model::Load(text),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a zip archive")));
  const std::string sd = TempPath("state_dict.pt");
  ASSERT_OK(WriteFileAtomically(sd, testing::MakeZip({{"a/data.pkl", "x"}, {"a/version", "3"}})));
  EXPECT_THAT(Model::Load(sd), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("torch.jit.script(model).save(path)")));
}

// torch 2.x's torch.export.save() file (testdata/make_pt2.py).
TEST(ModelTest, LoadTorchExportProgramSaysToTraceOrScriptInstead) {
  EXPECT_THAT(Model::Load("model/testdata/export_linear.pt2"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("torch.export"), HasSubstr("torch.jit.trace"),
                             HasSubstr("torch.jit.script"))));
}

TEST(ModelTest, CorruptArchiveContentsBecomeAStatusNotACrash) {
  const std::string path = TempPath("garbage.pt");
  ASSERT_OK(WriteFileAtomically(
      path, testing::MakeZip({{"a/data.pkl", "\x80\x02garbage"},
                              {"a/constants.pkl", "\x80\x02garbage"},
                              {"a/code/__torch__/m.py", "class M:\n  pass\n"},
                              {"a/version", "3\n"}})));
  EXPECT_THAT(Model::Load(path),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("loading TorchScript model \"" + path + "\"")));
}

TEST(ModelTest, CloneIsDeep) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("resnet_small"));
  ASSERT_OK_AND_ASSIGN(Model c, m.Clone());
  m.Eval();
  c.Eval();
  const at::Tensor x = at::randn({2, 1, 28, 28});
  EXPECT_TRUE(Forward(m, x).equal(Forward(c, x)));
  {
    c10::NoGradGuard no_grad;
    for (auto& [name, p] : c.NamedParameters()) p.zero_();
    for (auto& [name, b] : c.NamedBuffers()) b.fill_(2.0);
  }
  for (const auto& [name, p] : m.NamedParameters()) {
    if (name == "conv1.weight") {
      EXPECT_GT(p.abs().sum().item<double>(), 0.0);
    }
  }
  for (const auto& [name, b] : m.NamedBuffers()) {
    if (name == "bn1.running_var") {
      EXPECT_TRUE(b.equal(at::ones_like(b)));
    }
  }
  EXPECT_EQ(c.metadata().name(), "resnet_small");
  EXPECT_FALSE(Forward(m, x).equal(Forward(c, x)));
}

TEST(ModelTest, TrainEvalAndNamedTensors) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("vgg_small"));
  m.Eval();
  EXPECT_FALSE(m.is_training());
  m.Train();
  EXPECT_TRUE(m.is_training());
  auto params = m.NamedParameters();
  ASSERT_FALSE(params.empty());
  EXPECT_EQ(params.front().first, "conv1.weight");
  EXPECT_EQ(params.back().first, "fc2.bias");
  auto buffers = m.NamedBuffers();
  ASSERT_FALSE(buffers.empty());
  EXPECT_EQ(buffers.front().first, "bn1.running_mean");
  ASSERT_OK(m.To(c10::kCPU));
}

TEST(ModelTest, RecordedInputsComeBackAsZeroInputsOfBatchOne) {
  ModelMetadata md;
  EXPECT_FALSE(ZeroInputs(md).has_value());
  const std::vector<c10::IValue> batch = {at::randn({8, 3, 5, 7}), at::ones({8, 2}, at::kLong)};
  ASSERT_TRUE(RecordInputsIfUnknown(batch, md));
  ASSERT_EQ(md.inputs_size(), 2);
  EXPECT_EQ(md.inputs(0).dtype(), "float32");
  EXPECT_EQ(md.inputs(1).dtype(), "int64");
  const auto zeros = ZeroInputs(md);
  ASSERT_TRUE(zeros.has_value());
  ASSERT_EQ(zeros->size(), 2u);
  EXPECT_EQ((*zeros)[0].toTensor().sizes(), at::IntArrayRef({1, 3, 5, 7}));
  EXPECT_EQ((*zeros)[1].toTensor().sizes(), at::IntArrayRef({1, 2}));
  EXPECT_EQ((*zeros)[1].toTensor().scalar_type(), at::kLong);
  EXPECT_EQ((*zeros)[0].toTensor().abs().sum().item<double>(), 0.0);
  // What is recorded stays: a second batch of another shape changes nothing.
  EXPECT_FALSE(RecordInputsIfUnknown({at::randn({4, 1, 2, 2})}, md));
  EXPECT_EQ(md.inputs(0).shape(1), 3);
}

TEST(ModelTest, InputsThatAreNotTensorsOrOfUnknownDtypeAreNotRecorded) {
  ModelMetadata md;
  EXPECT_FALSE(RecordInputsIfUnknown({at::randn({2, 3}), c10::IValue(3)}, md));
  EXPECT_FALSE(RecordInputsIfUnknown({at::randn({2, 3}, at::kComplexFloat)}, md));
  EXPECT_EQ(md.inputs_size(), 0);
  md.add_inputs()->add_shape(1);
  md.mutable_inputs(0)->set_dtype("complex64");
  EXPECT_FALSE(ZeroInputs(md).has_value());
}

}  // namespace
}  // namespace slimfit
