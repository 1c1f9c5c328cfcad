// SPDX-License-Identifier: MIT
// A chain built at run time from a config file, with the library's loader
// (failover/chain_config.hpp): load_chain_file() reads examples/configs/chain.json
// (OpenAI -> Anthropic -> Gemini -> a local Ollama model -> a canned reply) and
// returns a DynamicRouter with everything it needs. Bad configuration fails at
// start-up with a ConfigError carrying the JSON pointer of the field
// (/routes/1/provider, /routes/0/options/max_attempts, ...), never later at
// request time; unknown fields are errors too, so a typo is not silently ignored,
// and a key written where its environment variable's name belongs is refused
// without being printed. The example shows bad configs being refused, then sends
// five requests through the file's chain pointed at the loopback mock while the
// routes fail one after another, so each request is answered one hop further
// down the chain. Exits non-zero if a request is answered by another route than
// expected or a bad config is accepted.
//   example-05-runtime-chain [--quick] [--config chain.json]
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <failover/chain_config.hpp>
#include <failover/failover.hpp>

#include "support/mock_provider.hpp"

using namespace failover;
using failover_mock::Fault;

namespace {

// Mistakes a config can have; each must be refused at start-up, naming the field.
struct BadConfig {
    const char* text;
    const char* pointer;  // the JSON pointer the error must carry
};
const BadConfig kBadConfigs[] = {
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o",
                     "api_key_env": "sk-proj-0123456789abcdef0123456789abcdef"}]})",
     "/routes/0/api_key_env"},
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o", "api_key_env": "FAILOVER_UNSET_VARIABLE"}]})",
     "/routes/0/api_key_env"},
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY"},
                    {"name": "b", "provider": "mistral", "model": "mistral-large"}]})",
     "/routes/1/provider"},
    {R"({"routes": [{"name": "a", "provider": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}]})", "/routes/0/model"},
    {R"({"routes": [{"name": "a", "provider": "gemini", "model": "gemini-2.5-flash", "api_key_env": "GEMINI_API_KEY",
                     "options": {"max_atempts": 3}}]})",
     "/routes/0/options/max_atempts"},
};

// The mock takes any key; a real deployment leaves ChainLoadOptions::env unset and the
// keys come from the process's environment.
std::optional<std::string> mock_env(const std::string& name) {
    if (name == "FAILOVER_UNSET_VARIABLE") return std::nullopt;
    return "mock-key";
}

int run(const std::filesystem::path& config) {
    ChainLoadOptions bad_options;
    bad_options.env = mock_env;
    bool refused_well = true;
    std::printf("Bad configuration is refused at start-up:\n");
    for (const auto& bad : kBadConfigs) {
        try {
            (void)load_chain_text(bad.text, bad_options);
            std::printf("  accepted a bad config (expected an error at %s)\n", bad.pointer);
            refused_well = false;
        } catch (const ConfigError& e) {
            std::printf("  %s\n", e.what());
            refused_well = refused_well && e.pointer() == bad.pointer;
        }
    }

    failover_mock::MockProvider mock;
    ChainLoadOptions options;
    options.env = mock_env;
    // Every HTTP route of the file goes to the mock route of the same name.
    options.base_url = [&mock](std::string_view route, std::string_view) { return mock.url(route); };
    LoadedChain chain = load_chain_file(config, options);
    std::printf("\nA chain of %zu routes loaded from %s, pointed at the mock at %s\n", chain->size(),
                config.filename().string().c_str(), mock.base_url().c_str());

    // Each step breaks one more route, so the answer comes from one hop further down.
    struct Step {
        const char* what;
        const char* expect;
    };
    const Step steps[] = {{"all healthy", "primary"},
                          {"primary answers 503", "secondary"},
                          {"secondary overloaded (529) too", "tertiary"},
                          {"tertiary out of quota too", "local"},
                          {"local model not pulled (404) too", "canned"}};
    bool routed_well = true;
    for (std::size_t i = 0; i < std::size(steps); ++i) {
        if (i == 1) mock.route("primary").otherwise(Fault::status(503));
        if (i == 2) mock.route("secondary").otherwise(Fault::status(529));
        if (i == 3) mock.route("tertiary").otherwise(Fault::quota_exhausted());
        if (i == 4) mock.route("local").otherwise(Fault::status(404));
        auto r = chain->route_with_fallback(ChatRequest{.messages = {user("Is the service up?")}});
        std::printf("  %-34s -> ", steps[i].what);
        if (!r) {
            std::printf("failed: %s\n", r.error().message.c_str());
            routed_well = false;
            continue;
        }
        std::string trail;
        for (const auto& a : r->attempts)
            trail += (trail.empty() ? "" : ", ") + a.route + (a.ok ? " ok" : " " + std::string(to_string(a.reason)));
        std::printf("%-9s [%s]\n", r->route.c_str(), trail.c_str());
        routed_well = routed_well && r->route == steps[i].expect;
    }
    return refused_well && routed_well ? 0 : 1;
}

}  // namespace

// examples/configs/chain.json next to this source file. __FILE__ may be relative (ccache's
// base_dir rewrites it) to the folder the example was compiled in: try it from the
// working directory, then from the executable's folder and the folders above it.
std::filesystem::path default_config() {
    namespace fs = std::filesystem;
    const fs::path rel = fs::path(__FILE__).parent_path() / "configs" / "chain.json";
    std::error_code ec;
    if (rel.is_absolute() || fs::exists(rel, ec)) return rel;
    for (fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path(); !ec && !dir.empty();
         dir = dir.parent_path()) {
        if (fs::exists(dir / rel, ec)) return dir / rel;
        if (dir == dir.root_path()) break;
    }
    return rel;
}

int main(int argc, char** argv) {
    std::filesystem::path config = default_config();  // unless --config names another
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) continue;  // everything here is quick; accepted for CTest
        if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
            continue;
        }
        std::fprintf(stderr, "usage: %s [--quick] [--config chain.json]\n", argv[0]);
        return 2;
    }
    try {
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
}
