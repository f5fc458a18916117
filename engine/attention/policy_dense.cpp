// dense: every query block attends to every key block (the quality reference, 0 % sparsity).
#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"

namespace longshot::attention {

namespace {
class DensePolicy final : public MaskPolicy {
 public:
  std::string name() const override { return "dense"; }
  BlockMaskPtr build(const MaskRequest& request) override {
    detail::check_request(request, false, name());
    return std::make_shared<const BlockMask>(BlockMask::full(request.grid.size(), request.block_size, 1));
  }
  ParamValues params() const override { return {}; }
};
}  // namespace

DenseConfig DenseConfig::from(const ParamValues&) { return {}; }

PolicyInfo dense_policy_info() {
  return {"dense", "full attention: every block pair kept (quality reference)", {},
          [](const ParamValues& v) { return make_dense_policy(DenseConfig::from(v)); }};
}

std::unique_ptr<MaskPolicy> make_dense_policy(const DenseConfig&) { return std::make_unique<DensePolicy>(); }

}  // namespace longshot::attention
