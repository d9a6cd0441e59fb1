// SHA-256 through OpenSSL, as lowercase hex: the audit chain and the policy set hash.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace mitigate {

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    Sha256& update(std::string_view bytes);
    std::string hex_digest();  // finishes the hash; call once

  private:
    struct Context;
    std::unique_ptr<Context> context_;
};

}  // namespace mitigate
