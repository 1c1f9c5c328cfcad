// SPDX-License-Identifier: MIT
// failover: the command-line tool. It loads a chain from a config file
// (failover/chain_config.hpp) and
//   ask     sends one prompt down the chain and prints the answer, then the
//           journey (every attempt: route, outcome, HTTP status, latency, cost);
//   check   validates the config, then sends one small probe to each route on
//           its own and prints a health table;
//   report  runs the route report card (failover/report.hpp) over golden cases,
//           writes report.md, report.json and report.html and fails when a route
//           is on the wrong side of a threshold.
// Answers go to stdout, everything about them (journey, progress, errors) to
// stderr, so `failover ask ... > answer.txt` keeps only the answer; --json puts one
// machine-readable document on stdout instead. Exit codes are stable (kExit* below,
// and `failover --help`). Keys come only from the environment variables the
// config names; nothing here prints a key or a request header, and the library's
// failure messages carry none.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <failover/chain_config.hpp>
#include <failover/failover.hpp>
#include <failover/report.hpp>

namespace fo = failover;
using Json = nlohmann::json;

namespace {

// ------------------------------------------------------------------ exit codes

constexpr int kExitOk = 0;        // answered / every route healthy / no threshold breached
constexpr int kExitFailed = 1;    // no route answered / a route unhealthy / a threshold breached
constexpr int kExitUsage = 2;     // bad arguments, config, schema or cases file: nothing was sent
constexpr int kExitIo = 3;        // could not write the output (report files), or an internal error


/// A mistake on the command line, or an input file that is not usable.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// Output that could not be written.
struct IoError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------ help

constexpr std::string_view kHelp = R"(failover - try a fallback chain from its config file

usage:
  failover ask    --config chain.json [options] "prompt"
  failover check  --config chain.json [--no-probe] [--json]
  failover report --config chain.json cases.jsonl [--out DIR] [thresholds]
  failover --help | --version | <command> --help

The config is the JSON file described by include/failover/failover-chain.schema.json.
--config may be left out when FAILOVER_CONFIG names the file. API keys come
from the environment variables the config names (api_key_env), never from
the command line.

Answers go to stdout; the journey, progress and errors go to stderr.

exit codes:
  0  ok: answered / every probed route healthy / no threshold breached
  1  ask: no route answered; check: a route failed its probe;
     report: a route is on the wrong side of a threshold
  2  usage error, or a bad config, schema or cases file (nothing was sent)
  3  output could not be written (report files), or an internal error
)";

constexpr std::string_view kAskHelp = R"(usage: failover ask --config chain.json [options] "prompt"

Sends the prompt down the chain (with failover) and prints the answer on
stdout, then the journey on stderr: every attempt with its route, outcome,
HTTP status, latency and cost, and which route answered. With no prompt
argument the prompt is read from stdin.

options:
  --config FILE      the chain (default: $FAILOVER_CONFIG)
  --stream           print the answer token by token as it arrives
  --schema FILE      ask for structured output following this JSON Schema;
                     prints the answer as JSON
  --system TEXT      a system prompt
  --tenant NAME      the tenant (budgets, metrics)
  --max-tokens N     output limit
  --timeout-ms N     deadline for the whole chain
  --json             print one JSON document (answer, attempts) instead
  -q, --quiet        no journey on stderr

exit codes: 0 answered, 1 no route answered, 2 usage or config error,
3 internal error
)";

constexpr std::string_view kCheckHelp = R"(usage: failover check --config chain.json [--no-probe] [--json]

Validates the config (a mistake is reported with the JSON pointer of the
field), then sends one small probe (a few output tokens) to each route on
its own, all routes at once, and prints a health table: route, provider,
model, status, latency, error. Local routes (static, error, cache) are
listed but not probed.

options:
  --config FILE      the chain (default: $FAILOVER_CONFIG)
  --no-probe         only validate the config; send nothing
  --prompt TEXT      the probe's prompt (default: "Reply with the word OK.")
  --max-tokens N     the probe's output limit (default 8)
  --timeout-ms N     each probe's deadline (default 20000)
  --json             print the table as JSON

exit codes: 0 config valid and every probed route answered, 1 a route
failed its probe, 2 usage or config error, 3 internal error
)";

constexpr std::string_view kReportHelp = R"(usage: failover report --config chain.json cases.jsonl [options]

Sends every golden case to every route on its own (no failover), a few at a
time, scores each route and writes report.md, report.json and report.html
into the output folder; prints the markdown table on stdout.

options:
  --config FILE          the chain (default: $FAILOVER_CONFIG)
  --out DIR              where the three files go (default: .)
  --concurrency N        requests in flight at once, over all routes (default 4)
  --tenant NAME          the tenant of every request
  --timeout-ms N         deadline of each case on each route
  --text-agreement X     word overlap at which plain text agrees with the
                         primary (default 0.5)
  -q, --quiet            no progress line

thresholds (a route on the wrong side is a breach: exit 1); rates are
fractions (0.9) or percentages (90%):
  --min-schema-valid X        --min-tool-calls-valid X
  --min-tool-calls-expected X --min-expected-content X
  --min-agreement X           --max-refusals X
  --max-errors X              --max-latency-p50-ms MS
  --max-latency-p99-ms MS     --max-cost-per-case-usd USD

exit codes: 0 no threshold breached, 1 a threshold breached, 2 usage,
config or cases error, 3 the report files could not be written
)";

// ------------------------------------------------------------------ arguments

/// A command's arguments: flags (with or without a value) and positionals.
class Args {
public:
    Args(std::vector<std::string> argv, std::set<std::string> with_value, std::set<std::string> switches)
        : with_value_(std::move(with_value)), switches_(std::move(switches)) {
        bool flags = true;
        for (std::size_t i = 0; i < argv.size(); ++i) {
            std::string a = argv[i];
            if (flags && a == "--") {
                flags = false;
                continue;
            }
            if (!flags || a.size() < 2 || a[0] != '-') {
                positional.push_back(std::move(a));
                continue;
            }
            if (a == "-q") a = "--quiet";
            if (a == "-h") a = "--help";
            std::string name = a;
            std::optional<std::string> value;
            if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
            }
            if (switches_.count(name) != 0) {
                if (value) throw UsageError(name + " takes no value");
                set_[name] = "";
                continue;
            }
            if (with_value_.count(name) == 0) throw UsageError("unknown option " + name);
            if (!value) {
                if (i + 1 >= argv.size()) throw UsageError(name + " needs a value");
                value = argv[++i];
            }
            if (set_.count(name) != 0) throw UsageError(name + " is given twice");
            set_[name] = *value;
        }
    }

    bool has(const std::string& name) const { return set_.count(name) != 0; }
    std::optional<std::string> get(const std::string& name) const {
        auto it = set_.find(name);
        if (it == set_.end()) return std::nullopt;
        return it->second;
    }
    /// A whole number in [lo, hi].
    std::optional<long long> integer(const std::string& name, long long lo, long long hi) const {
        auto v = get(name);
        if (!v) return std::nullopt;
        std::size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(*v, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != v->size() || n < lo || n > hi)
            throw UsageError(name + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                             ", got '" + *v + "'");
        return n;
    }
    /// A number; with `percent` a trailing % divides by 100.
    std::optional<double> number(const std::string& name, bool percent) const {
        auto v = get(name);
        if (!v) return std::nullopt;
        std::string text = *v;
        double scale = 1.0;
        if (percent && !text.empty() && text.back() == '%') {
            text.pop_back();
            scale = 0.01;
        }
        std::size_t used = 0;
        double x = 0.0;
        try {
            x = std::stod(text, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != text.size() || !std::isfinite(x) || x < 0.0)
            throw UsageError(name + " must be a number >= 0, got '" + *v + "'");
        return x * scale;
    }

    std::vector<std::string> positional{};

private:
    std::set<std::string> with_value_;
    std::set<std::string> switches_;
    std::map<std::string, std::string> set_{};
};

std::string read_file(const std::filesystem::path& path, std::size_t max_bytes, std::string_view what) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw UsageError("cannot read " + std::string(what) + " " + path.string() + ": " + ec.message());
    if (size > max_bytes)
        throw UsageError(std::string(what) + " " + path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
    std::ifstream in(path, std::ios::binary);
    std::string text(static_cast<std::size_t>(size), '\0');
    if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size())))
        throw UsageError("cannot read " + std::string(what) + " " + path.string());
    return text;
}

std::filesystem::path config_path(const Args& a) {
    if (auto c = a.get("--config")) return *c;
    if (const char* env = std::getenv("FAILOVER_CONFIG"); env && *env) return env;  // NOLINT(concurrency-mt-unsafe)
    throw UsageError("no config: give --config chain.json (or set FAILOVER_CONFIG)");
}

// ------------------------------------------------------------------ text output

/// Display width of UTF-8 text (code points; good enough for names and numbers).
std::size_t width_of(std::string_view s) {
    std::size_t n = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++n;
    return n;
}

/// `s` cut to `max` code points, with an ellipsis when cut; newlines become spaces.
std::string clip(std::string_view s, std::size_t max) {
    std::string out;
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0U) != 0x80U) {
            if (n == max) {
                // drop the last code point to make room for the ellipsis
                while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0U) == 0x80U) out.pop_back();
                if (!out.empty()) out.pop_back();
                return out + "\xE2\x80\xA6";
            }
            ++n;
        }
        out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : s[i];
    }
    return out;
}

/// Rows padded into columns, two spaces apart; the first row is the header.
std::string table(const std::vector<std::vector<std::string>>& rows, std::string_view indent = "") {
    std::vector<std::size_t> w;
    for (const auto& r : rows) {
        if (w.size() < r.size()) w.resize(r.size(), 0);
        for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], width_of(r[i]));
    }
    std::string out;
    for (const auto& r : rows) {
        std::string line(indent);
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(w[i] - width_of(r[i]) + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

double ms_of(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string format_ms(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ms < 10.0 ? "%.1f ms" : "%.0f ms", ms);
    return buf;
}

std::string format_usd(double usd) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.6f", usd);
    return buf;
}

std::string outcome_of(const fo::Attempt& at) {
    if (at.ok) return "ok";
    return std::string(fo::to_string(at.reason)) + " (" + std::string(fo::to_string(at.kind)) + ")";
}

Json attempt_json(const fo::Attempt& at, std::optional<double> cost) {
    Json j{{"route", at.route},          {"number", at.number},
           {"ok", at.ok},                {"status", at.status},
           {"latency_ms", ms_of(at.latency)}};
    if (!at.ok) {
        j["reason"] = std::string(fo::to_string(at.reason));
        j["kind"] = std::string(fo::to_string(at.kind));
        j["message"] = at.message;
    }
    j["cost_usd"] = cost ? Json(*cost) : Json(nullptr);
    return j;
}

/// The attempts as a table; only the answering attempt has a known cost.
std::string journey(const std::vector<fo::Attempt>& attempts, const fo::ChatResponse* answer) {
    std::vector<std::vector<std::string>> rows{{"#", "route", "try", "outcome", "status", "latency", "cost", "detail"}};
    std::size_t i = 0;
    for (const fo::Attempt& at : attempts) {
        ++i;
        const bool answered = at.ok && answer != nullptr && at.route == answer->route;
        rows.push_back({std::to_string(i), at.route, std::to_string(at.number), outcome_of(at),
                        at.status == 0 ? "-" : std::to_string(at.status), format_ms(ms_of(at.latency)),
                        answered ? format_usd(answer->cost_usd) : "-", at.ok ? "" : clip(at.message, 60)});
    }
    return table(rows, "  ");
}

// ------------------------------------------------------------------ the chain

fo::LoadedChain load(const std::filesystem::path& path) {
    return fo::load_chain_file(path);  // keys from the process's environment
}

/// A route's provider and model as the config names them, by route name.
struct RouteInfo {
    std::string provider{};
    std::string model{};
};

std::map<std::string, RouteInfo> route_infos(const std::filesystem::path& path) {
    std::map<std::string, RouteInfo> out;
    const Json doc = Json::parse(read_file(path, std::size_t{1} << 20, "config"), nullptr, false);
    if (!doc.is_object() || !doc.contains("routes") || !doc["routes"].is_array()) return out;
    auto add = [&](const Json& r) {
        if (!r.is_object() || !r.contains("name") || !r["name"].is_string()) return;
        RouteInfo info;
        info.provider = r.value("provider", std::string());
        if (r.contains("model") && r["model"].is_string()) info.model = r["model"].get<std::string>();
        else if (r.contains("deployment") && r["deployment"].is_string()) info.model = r["deployment"].get<std::string>();
        out[r["name"].get<std::string>()] = std::move(info);
    };
    for (const Json& r : doc["routes"]) {
        if (r.is_object() && r.contains("deployments") && r["deployments"].is_array())
            for (const Json& d : r["deployments"]) add(d);
        else
            add(r);
    }
    return out;
}

// ------------------------------------------------------------------ ask

int ask(const std::vector<std::string>& argv) {
    const Args a(argv, {"--config", "--schema", "--system", "--tenant", "--max-tokens", "--timeout-ms"},
                 {"--stream", "--json", "--quiet", "--help"});
    if (a.has("--help")) {
        std::cout << kAskHelp;
        return kExitOk;
    }
    std::string prompt;
    for (const std::string& p : a.positional) prompt += (prompt.empty() ? "" : " ") + p;
    if (a.positional.empty()) {
        if (isatty(STDIN_FILENO)) throw UsageError("no prompt: give it as an argument, or on stdin");
        prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        while (!prompt.empty() && (prompt.back() == '\n' || prompt.back() == '\r')) prompt.pop_back();
    }
    if (prompt.empty()) throw UsageError("the prompt is empty");
    const bool as_json = a.has("--json");
    const bool stream = a.has("--stream");
    const bool quiet = a.has("--quiet");

    fo::ChatRequest req;
    if (auto s = a.get("--system")) req.messages.push_back(fo::system_prompt(*s));
    req.messages.push_back(fo::user(prompt));
    if (auto t = a.get("--tenant")) req.tenant = *t;
    if (auto m = a.integer("--max-tokens", 1, 10'000'000)) req.max_tokens = static_cast<int>(*m);
    if (auto t = a.integer("--timeout-ms", 1, 86'400'000)) req.timeout = std::chrono::milliseconds{*t};
    if (auto s = a.get("--schema")) {
        const std::string text = read_file(*s, std::size_t{1} << 20, "schema");
        try {
            req.schema = fo::Schema::parse(text);
        } catch (const fo::Schema::ParseError& e) {
            throw UsageError("schema " + *s + ": " + (e.pointer().empty() ? "" : "at " + e.pointer() + ": ") + e.reason());
        }
    }

    const fo::LoadedChain chain = load(config_path(a));

    fo::Result<fo::ChatResponse> r = fo::Failure::of(fo::Reason::internal, "not sent");
    bool streamed_text = false;
    char last_char = '\n';
    if (stream) {
        r = chain->stream(
            req,
            [&](const fo::StreamEvent& ev) {
                if (as_json) return;
                if (ev.kind == fo::StreamEvent::Kind::restart) {
                    if (last_char != '\n') std::fputc('\n', stdout);
                    std::fflush(stdout);
                    std::fprintf(stderr, "failover: %.*s failed mid-stream (%.*s); the next route starts over\n",
                                 static_cast<int>(ev.route.size()), ev.route.data(),
                                 static_cast<int>(fo::to_string(ev.reason).size()), fo::to_string(ev.reason).data());
                    last_char = '\n';
                    return;
                }
                if (ev.kind != fo::StreamEvent::Kind::delta || ev.delta == nullptr) return;
                if (ev.delta->kind != fo::StreamDelta::Kind::text || ev.delta->text.empty()) return;
                std::fwrite(ev.delta->text.data(), 1, ev.delta->text.size(), stdout);
                std::fflush(stdout);
                last_char = ev.delta->text.back();
                streamed_text = true;
            },
            chain.stream);
    } else {
        r = chain->route_with_fallback(req);
    }

    if (as_json) {
        Json out;
        out["ok"] = r.has_value();
        const std::vector<fo::Attempt>& attempts = r.has_value() ? r->attempts : r.error().attempts;
        Json list = Json::array();
        for (const fo::Attempt& at : attempts) {
            const bool answered = at.ok && r.has_value() && at.route == r->route;
            list.push_back(attempt_json(at, answered ? std::optional<double>(r->cost_usd) : std::nullopt));
        }
        if (r.has_value()) {
            out["route"] = r->route;
            out["model"] = r->model;
            out["text"] = r->text;
            out["json"] = r->json;
            Json calls = Json::array();
            for (const fo::ToolCall& c : r->tool_calls) calls.push_back({{"name", c.name}, {"arguments", c.arguments}});
            out["tool_calls"] = std::move(calls);
            out["finish"] = std::string(fo::to_string(r->finish_reason));
            out["usage"] = {{"input_tokens", r->usage.input_tokens}, {"output_tokens", r->usage.output_tokens}};
            out["cost_usd"] = r->cost_usd;
        } else {
            const fo::Failure& f = r.error();
            out["failure"] = {{"reason", std::string(fo::to_string(f.reason))},
                              {"kind", std::string(fo::to_string(f.kind))},
                              {"route", f.route},
                              {"status", f.status},
                              {"message", f.message},
                              {"provider_code", f.provider_code}};
        }
        out["attempts"] = std::move(list);
        std::cout << out.dump(2) << "\n";
        return r.has_value() ? kExitOk : kExitFailed;
    }

    if (r.has_value()) {
        if (!stream || !streamed_text) {
            if (req.schema && !r->json.is_null()) std::cout << r->json.dump(2) << "\n";
            else if (!r->text.empty()) std::cout << r->text << (r->text.back() == '\n' ? "" : "\n");
        } else if (last_char != '\n') {
            std::cout << "\n";
        }
        for (const fo::ToolCall& c : r->tool_calls) std::cout << "tool call: " << c.name << " " << c.arguments.dump() << "\n";
        std::cout.flush();
    } else if (stream && streamed_text && last_char != '\n') {
        std::fputc('\n', stdout);
    }
    std::fflush(stdout);

    if (!quiet) {
        const std::vector<fo::Attempt>& attempts = r.has_value() ? r->attempts : r.error().attempts;
        std::string out = "\n--- journey: " + std::to_string(attempts.size()) + (attempts.size() == 1 ? " attempt" : " attempts") + "\n";
        out += journey(attempts, r.has_value() ? &*r : nullptr);
        if (r.has_value()) {
            std::set<std::string> failed;
            for (const fo::Attempt& at : attempts)
                if (!at.ok && at.route != r->route) failed.insert(at.route);
            out += "answered by " + r->route + (r->model.empty() ? "" : " (model " + r->model + ")");
            if (!failed.empty()) out += " after " + std::to_string(failed.size()) + (failed.size() == 1 ? " route" : " routes") + " failed";
            out += ": " + std::to_string(r->usage.input_tokens) + " tokens in, " + std::to_string(r->usage.output_tokens) +
                   " out, " + format_usd(r->cost_usd) + "\n";
        }
        std::cerr << out;
    }
    if (!r.has_value()) {
        const fo::Failure& f = r.error();
        std::cerr << "failover: no route answered: " << fo::to_string(f.reason);
        if (f.status != 0) std::cerr << " (HTTP " << f.status << ")";
        if (!f.route.empty()) std::cerr << " from " << f.route;
        if (!f.message.empty()) std::cerr << ": " << clip(f.message, 200);
        std::cerr << "\n";
        return kExitFailed;
    }
    return kExitOk;
}

// ------------------------------------------------------------------ check

struct Probe {
    std::string route{};
    RouteInfo info{};
    bool probed = false;
    bool ok = false;
    int status = 0;
    std::chrono::nanoseconds latency{};
    std::string error{};
};

int check(const std::vector<std::string>& argv) {
    const Args a(argv, {"--config", "--prompt", "--max-tokens", "--timeout-ms"}, {"--no-probe", "--json", "--help"});
    if (a.has("--help")) {
        std::cout << kCheckHelp;
        return kExitOk;
    }
    if (!a.positional.empty()) throw UsageError("check takes no arguments besides options, got '" + a.positional.front() + "'");
    const bool as_json = a.has("--json");
    const std::filesystem::path path = config_path(a);
    fo::LoadedChain chain;
    try {
        chain = load(path);
    } catch (const fo::ConfigError& e) {
        if (!as_json) throw;
        std::cout << Json{{"config_valid", false}, {"pointer", e.pointer()}, {"reason", e.reason()}}.dump(2) << "\n";
        return kExitUsage;
    }
    const std::map<std::string, RouteInfo> infos = route_infos(path);

    fo::ChatRequest req;
    req.messages.push_back(fo::user(a.get("--prompt").value_or("Reply with the word OK.")));
    req.max_tokens = static_cast<int>(a.integer("--max-tokens", 1, 100'000).value_or(8));
    req.timeout = std::chrono::milliseconds{a.integer("--timeout-ms", 1, 3'600'000).value_or(20'000)};

    std::vector<Probe> probes(chain->size());
    for (std::size_t i = 0; i < probes.size(); ++i) {
        probes[i].route = chain->route(i).name();
        if (auto it = infos.find(probes[i].route); it != infos.end()) probes[i].info = it->second;
    }
    const bool probe = !a.has("--no-probe");
    if (probe) {
        // Every route on its own, all at once: a chain of slow providers is checked in the
        // time of the slowest.
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < probes.size(); ++i) {
            fo::AnyRoute& route = chain->route(i);
            if (!route.is_http()) continue;
            threads.emplace_back([&probes, &route, &req, i] {
                Probe& p = probes[i];
                p.probed = true;
                const auto start = std::chrono::steady_clock::now();
                const fo::Result<fo::ChatResponse> r = fo::route_with_fallback(req, route);
                p.latency = std::chrono::steady_clock::now() - start;
                p.ok = r.has_value();
                if (r.has_value()) {
                    for (const fo::Attempt& at : r->attempts)
                        if (at.ok) p.status = at.status;  // 0: the transport did not say
                } else {
                    const fo::Failure& f = r.error();
                    p.status = f.status;
                    // The route's own words: the last attempt's message, not the chain's summary of it.
                    const std::string& said = f.attempts.empty() || f.attempts.back().message.empty()
                                                  ? f.message
                                                  : f.attempts.back().message;
                    p.error = std::string(fo::to_string(f.reason)) + (said.empty() ? "" : ": " + said);
                }
            });
        }
        for (auto& t : threads) t.join();
    }

    std::size_t unhealthy = 0;
    std::size_t probed = 0;
    for (const Probe& p : probes) {
        probed += p.probed ? 1 : 0;
        unhealthy += (p.probed && !p.ok) ? 1 : 0;
    }
    if (as_json) {
        Json routes = Json::array();
        for (const Probe& p : probes) {
            Json j{{"route", p.route}, {"provider", p.info.provider}, {"model", p.info.model}, {"probed", p.probed}};
            if (p.probed) {
                j["ok"] = p.ok;
                j["status"] = p.status;
                j["latency_ms"] = ms_of(p.latency);
                j["error"] = p.error;
            }
            routes.push_back(std::move(j));
        }
        std::cout << Json{{"config_valid", true}, {"routes", std::move(routes)}, {"unhealthy", unhealthy}}.dump(2) << "\n";
        return unhealthy == 0 ? kExitOk : kExitFailed;
    }

    std::cout << "config " << path.string() << ": valid, " << probes.size() << (probes.size() == 1 ? " route" : " routes") << "\n";
    std::vector<std::vector<std::string>> rows{{"route", "provider", "model", "status", "latency", "error"}};
    for (const Probe& p : probes) {
        std::string status = "-";
        if (!probe) status = "not probed";
        else if (!p.probed) status = "local";
        else if (p.ok) status = "ok" + (p.status != 0 ? " " + std::to_string(p.status) : std::string());
        else status = "FAIL" + (p.status != 0 ? " " + std::to_string(p.status) : std::string());
        rows.push_back({p.route, p.info.provider.empty() ? "-" : p.info.provider, p.info.model.empty() ? "-" : p.info.model,
                        status, p.probed ? format_ms(ms_of(p.latency)) : "-", p.probed ? clip(p.error, 80) : ""});
    }
    std::cout << table(rows);
    if (probe && probed == 0)
        std::cout << "no route calls a provider: nothing to probe\n";
    else if (probe)
        std::cout << (unhealthy == 0 ? "healthy: " : "unhealthy: ") << (probed - unhealthy) << " of " << probed
                  << " probed routes answered\n";
    return unhealthy == 0 ? kExitOk : kExitFailed;
}

// ------------------------------------------------------------------ report

/// The flag of a measure's threshold: --min-schema-valid, --max-latency-p99-ms, ...
std::string threshold_flag(const fo::MeasureInfo& m) {
    std::string key(m.key);
    std::replace(key.begin(), key.end(), '_', '-');
    return (m.higher_is_better ? "--min-" : "--max-") + key;
}

/// The progress line: redrawn in place on a terminal, a few plain lines otherwise.
class ProgressLine {
public:
    explicit ProgressLine(bool enabled) : enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0) {}

    void operator()(const fo::ReportProgress& p) {
        if (!enabled_ || p.total == 0) return;
        if (tty_) {
            constexpr std::size_t bar = 24;
            const std::size_t filled = p.done * bar / p.total;
            std::string line = "\rreport [" + std::string(filled, '#') + std::string(bar - filled, '.') + "] " +
                               std::to_string(p.done) + "/" + std::to_string(p.total) + "  " + clip(p.route + " / " + p.case_id, 40);
            const std::size_t w = width_of(line);
            if (w < last_width_) line += std::string(last_width_ - w, ' ');
            last_width_ = std::max(last_width_, w);
            std::fputs(line.c_str(), stderr);
            if (p.done == p.total) std::fputc('\n', stderr);
            std::fflush(stderr);
            return;
        }
        // Quarters, and the end: enough to see a CI job move without flooding its log.
        const std::size_t quarter = p.done * 4 / p.total;
        if (quarter > last_quarter_ || p.done == p.total) {
            last_quarter_ = quarter;
            std::fprintf(stderr, "report: %zu/%zu requests done (%zu%%)\n", p.done, p.total, p.done * 100 / p.total);
            std::fflush(stderr);
        }
    }

private:
    bool enabled_;
    bool tty_;
    std::size_t last_width_ = 0;
    std::size_t last_quarter_ = 0;
};

void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(text.data(), static_cast<std::streamsize>(text.size())) || !out.flush())
        throw IoError("cannot write " + path.string());
}

int report(const std::vector<std::string>& argv) {
    std::set<std::string> with_value{"--config", "--out", "--concurrency", "--tenant", "--timeout-ms", "--text-agreement"};
    for (const fo::MeasureInfo& m : fo::measures()) with_value.insert(threshold_flag(m));
    const Args a(argv, with_value, {"--quiet", "--help"});
    if (a.has("--help")) {
        std::cout << kReportHelp;
        return kExitOk;
    }
    if (a.positional.size() != 1)
        throw UsageError(a.positional.empty() ? "report needs a cases file (JSON lines)" : "report takes one cases file");

    fo::ReportThresholds thresholds;
    for (const fo::MeasureInfo& m : fo::measures()) {
        const std::string flag = threshold_flag(m);
        const std::optional<double> v = a.number(flag, m.unit == "rate");
        if (v && m.unit == "rate" && *v > 1.0) throw UsageError(flag + " is a rate: give a fraction (0.9) or a percentage (90%)");
        thresholds.set(m.measure, v);
    }
    fo::ReportOptions options;
    options.concurrency = static_cast<std::size_t>(a.integer("--concurrency", 1, 256).value_or(4));
    if (auto t = a.get("--tenant")) options.defaults.tenant = *t;
    if (auto t = a.integer("--timeout-ms", 1, 86'400'000)) options.defaults.timeout = std::chrono::milliseconds{*t};
    if (auto x = a.number("--text-agreement", false)) {
        if (*x <= 0.0 || *x > 1.0) throw UsageError("--text-agreement must be in (0, 1]");
        options.text_agreement = *x;
    }
    const std::filesystem::path out_dir = a.get("--out").value_or(".");

    std::vector<fo::GoldenCase> cases;
    try {
        cases = fo::load_cases_file(a.positional.front());
    } catch (const fo::CaseError& e) {
        throw UsageError(a.positional.front() + ": " + e.what());
    } catch (const std::runtime_error& e) {
        throw UsageError(e.what());
    }
    if (cases.empty()) throw UsageError(a.positional.front() + ": no cases");

    fo::LoadedChain chain = load(config_path(a));
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw IoError("cannot create " + out_dir.string() + ": " + ec.message());

    const bool quiet = a.has("--quiet");
    if (!quiet)
        std::fprintf(stderr, "report: %zu cases x %zu routes, %zu at a time\n", cases.size(), chain->size(), options.concurrency);
    ProgressLine progress(!quiet);
    const fo::ReportCard card =
        fo::run_report(*chain, cases, options, [&progress](const fo::ReportProgress& p) { progress(p); });

    const std::string md = fo::to_markdown(card, thresholds);
    write_text(out_dir / "report.md", md);
    write_text(out_dir / "report.json", fo::to_json(card, thresholds).dump(2) + "\n");
    write_text(out_dir / "report.html", fo::to_html(card, thresholds));
    std::cout << md << (md.empty() || md.back() == '\n' ? "" : "\n");
    std::cout.flush();
    if (!quiet) std::cerr << "report: wrote " << (out_dir / "report.md").string() << ", report.json and report.html\n";

    const std::vector<fo::Breach> breaches = fo::evaluate(card, thresholds);
    if (breaches.empty()) return kExitOk;
    std::cerr << "failover: " << breaches.size() << (breaches.size() == 1 ? " threshold breached:\n" : " thresholds breached:\n");
    for (const fo::Breach& b : breaches) std::cerr << "  " << b.describe() << "\n";
    return kExitFailed;
}

int run(const std::vector<std::string>& args) {
    if (args.empty()) {
        std::cerr << kHelp;
        return kExitUsage;
    }
    const std::string& cmd = args.front();
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        std::cout << kHelp;
        return kExitOk;
    }
    if (cmd == "--version") {
        std::cout << "failover " << FAILOVER_VERSION_MAJOR << "." << FAILOVER_VERSION_MINOR << "." << FAILOVER_VERSION_PATCH
                  << "\n";
        return kExitOk;
    }
    if (cmd == "ask") return ask(rest);
    if (cmd == "check") return check(rest);
    if (cmd == "report") return report(rest);
    throw UsageError("unknown command '" + cmd + "' (ask, check, report)");
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return run(args);
    } catch (const UsageError& e) {
        std::cerr << "failover: " << e.what() << "\n(failover --help for usage)\n";
        return kExitUsage;
    } catch (const fo::ConfigError& e) {
        // what() names the file, the JSON pointer of the field and the reason; never a key.
        std::cerr << e.what() << "\n";
        return kExitUsage;
    } catch (const IoError& e) {
        std::cerr << "failover: " << e.what() << "\n";
        return kExitIo;
    } catch (const std::exception& e) {
        std::cerr << "failover: internal error: " << e.what() << "\n";
        return kExitIo;
    }
}
