// SPDX-License-Identifier: MIT
// libFuzzer target for the chain config loader (chain_config.hpp): any text handed
// to load_chain_text() either loads or is refused with a ConfigError; nothing else
// may escape, nothing may crash, trip ASan/UBSan or recurse without bound. A refusal
// must never echo a value that looks like a key (checked on the inputs' own
// api_key_env values). The environment is a fake (every variable set), every HTTP
// route points at a closed loopback port and nothing is sent. Inputs that name a
// statsd or json_lines sink are skipped: those would resolve host names and create
// files. Seeded with examples/configs/*.json.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <failover/chain_config.hpp>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (text.find("statsd") != std::string_view::npos || text.find("json_lines") != std::string_view::npos) return 0;
    static const std::shared_ptr<failover::CurlTransport> http = std::make_shared<failover::CurlTransport>();
    failover::ChainLoadOptions o;
    o.transport = http;
    o.env = [](const std::string&) { return std::optional<std::string>("fuzz-key"); };
    o.base_url = [](std::string_view, std::string_view) { return std::string("http://127.0.0.1:9"); };
    o.max_bytes = 64 * 1024;
    try {
        failover::LoadedChain chain = failover::load_chain_text(text, o);
        require(chain.router != nullptr && chain.router->size() >= 1);
    } catch (const failover::ConfigError& e) {
        const std::string what = e.what();
        // A literal key in api_key_env is refused without being echoed.
        constexpr std::string_view marker = "\"api_key_env\": \"sk-";
        if (const auto at = text.find(marker); at != std::string_view::npos) {
            const auto end = text.find('"', at + marker.size());
            const std::string_view key = text.substr(at + marker.size() - 3, end == std::string_view::npos ? 0 : end - at - marker.size() + 3);
            if (key.size() >= 16 && key.find('\\') == std::string_view::npos) require(what.find(key) == std::string::npos);
        }
    }
    return 0;
}
