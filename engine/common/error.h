// Errors the engine raises. Every message names what was wrong (a parameter, a tensor, a file),
// so the CLI and the studio can show it as is. Nothing here knows about any room's types.
#pragma once
#include <stdexcept>
#include <string>

namespace longshot {

// Base of every error the engine throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A user-facing parameter (mode parameter, CLI flag, config field) is out of range or unknown.
class ParameterError : public Error {
 public:
  ParameterError(std::string parameter, const std::string& why)
      : Error("invalid parameter '" + parameter + "': " + why), parameter_(std::move(parameter)) {}
  const std::string& parameter() const { return parameter_; }

 private:
  std::string parameter_;
};

// Shapes, dtypes or devices of tensors that do not fit together.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// Files: unreadable, malformed, unwritable.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace longshot
