// Precompiled header for the engine and its tests: LibTorch's headers are the bulk of every
// translation unit's compile time. Keep only stable, heavy, widely used headers here.
#pragma once
#include <torch/torch.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
