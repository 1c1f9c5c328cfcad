// SPDX-License-Identifier: MIT
// The CTest driver of the `failover` command-line tool (examples/cli/failover.cpp).
// It starts the loopback mock providers (tests/support/mock_provider.hpp) with
// scripted behaviour, writes chain configs whose every route points at them, runs
// the real binary (FAILOVER_CLI, passed in by CMake) as a child process for each
// command, and checks its stdout, stderr and exit code:
//   ask     a failing primary (HTTP 500, twice) so the journey shows the fallback; a
//           streamed answer; structured output with --schema; --json; a chain where
//           nothing answers (exit 1); no prompt (exit 2)
//   check   an unhealthy route (exit 1), --no-probe (nothing sent), a healthy chain
//           as JSON (exit 0), bad configs (exit 2 with the JSON pointer)
//   report  examples/report/cases.jsonl against four routes, one deliberately worse:
//           exit 1 naming only that route, the three files written, report.html with
//           one <svg> per measure; a passing run (exit 0); bad input (exit 2, 3)
// The API key the configs name is a marker that must never appear in any output.
// Needs nothing from the library itself: only the mock, nlohmann/json and POSIX.
// FAILOVER_CLI_TEST_SHOW=1 prints every run (command, stdout, stderr, exit code).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/mock_provider.hpp"
#include "support/report_answers.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace fs = std::filesystem;
using failover_mock::Fault;
using failover_mock::MockProvider;
using failover_test::good_answers;
using failover_test::worse_answers;
using Json = nlohmann::json;

namespace {

constexpr const char* kKeyVar = "FAILOVER_CLI_TEST_KEY";
constexpr const char* kSecret = "mock-secret-7f3a9c2d";  // must never be printed

int failures = 0;
std::string all_output;  // every child's stdout and stderr, searched for the secret at the end

struct Run {
    std::string label;
    int code = -1;
    std::string out;
    std::string err;
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// Runs the CLI with `args`, stdin from /dev/null, stdout and stderr to files; kills it after 120 s.
Run cli(const fs::path& dir, const std::vector<std::string>& args) {
    Run r;
    for (const auto& a : args) r.label += (r.label.empty() ? "" : " ") + a;
    const fs::path out = dir / "child.out";
    const fs::path err = dir / "child.err";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);

    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv(*e);
        const std::string_view name = kv.substr(0, kv.find('='));
        if (name == kKeyVar || name == "FAILOVER_CONFIG" || name.find("_BASE_URL") != std::string_view::npos ||
            name.find("_API_KEY") != std::string_view::npos)
            continue;
        env_text.emplace_back(kv);
    }
    env_text.push_back(std::string(kKeyVar) + "=" + kSecret);
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_text{FAILOVER_CLI};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_t pid = 0;
    const int rc = posix_spawn(&pid, FAILOVER_CLI, &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error(std::string("posix_spawn " FAILOVER_CLI ": ") + std::strerror(rc));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int status = 0;
    for (;;) {
        const pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0) throw std::runtime_error("waitpid failed");
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    r.out = slurp(out);
    r.err = slurp(err);
    all_output += r.out + r.err;
    if (std::getenv("FAILOVER_CLI_TEST_SHOW") != nullptr)  // NOLINT(concurrency-mt-unsafe): one thread
        std::cout << "$ failover " << r.label << "\n" << r.out << r.err << "[exit " << r.code << "]\n\n";
    return r;
}

void check(bool ok, const Run& r, const std::string& what) {
    if (ok) return;
    ++failures;
    std::cerr << "FAILED: failover " << r.label << "\n  expected: " << what << "\n  exit code: " << r.code
              << "\n  --- stdout ---\n" << r.out << "\n  --- stderr ---\n" << r.err << "\n";
}

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

std::size_t count(const std::string& text, std::string_view part) {
    std::size_t n = 0;
    for (std::size_t i = text.find(part); i != std::string::npos; i = text.find(part, i + part.size())) ++n;
    return n;
}

/// The line of `text` that contains `part`, or "".
std::string line_with(const std::string& text, std::string_view part) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (has(line, part)) return line;
    return {};
}

Json route(const std::string& name, const std::string& provider, const std::string& model, const std::string& base_url,
           Json options = Json::object()) {
    Json r{{"name", name}, {"provider", provider}, {"model", model}, {"api_key_env", kKeyVar}, {"base_url", base_url}};
    if (!options.empty()) r["options"] = std::move(options);
    return r;
}

Json price(double in, double out) { return {{"input_per_million", in}, {"output_per_million", out}}; }

// ------------------------------------------------------------------ the report's answer sets

/// The text a case's answer is keyed on: its prompt, or its last user message.
std::string key_of(const Json& c) {
    if (c.contains("prompt")) return c["prompt"].get<std::string>();
    std::string key;
    for (const Json& m : c["messages"])
        if (m["role"] == "user") key = m["content"].get<std::string>();
    return key;
}

}  // namespace

int main() {
    try {
        std::string tmpl = (fs::temp_directory_path() / "failover-cli-XXXXXX").string();
        if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        const fs::path dir = tmpl;
        const fs::path source = FAILOVER_SOURCE_DIR;

        MockProvider mock;
        // ask: the primary fails (HTTP 500 on both attempts), the secondary answers; a canned
        // last route is never reached (and is local, so check does not probe it).
        mock.route("a-primary").require_auth().otherwise(Fault::status(500));
        mock.route("a-secondary")
            .require_auth()
            .answer("capital of France", Fault::ok("Paris is the capital of France.").pieces(3))
            .answer("invoice fields", Fault::ok_json({{"vendor", "ACME Corp"}, {"total", 12.5}, {"currency", "EUR"}}));
        const Json ask_config{
            {"version", 1},
            {"routes",
             {route("a-primary", "openai", "gpt-4o-mini", mock.url("a-primary") + "/v1",
                    {{"max_attempts", 2}, {"backoff", {{"base_ms", 1}, {"cap_ms", 2}}}, {"price", price(0.15, 0.6)}}),
              route("a-secondary", "anthropic", "claude-sonnet-4-5", mock.url("a-secondary"),
                    {{"max_attempts", 1}, {"price", price(3.0, 15.0)}}),
              {{"name", "canned"}, {"provider", "static"}, {"reply", "Busy, try again."}}}}};
        const fs::path ask_json = dir / "ask.json";
        write(ask_json, ask_config.dump(2));
        Json down_config = ask_config;
        down_config["routes"] = Json::array({ask_config["routes"][0]});
        const fs::path down_json = dir / "down.json";
        write(down_json, down_config.dump(2));

        // ---------------------------------------------------------------- usage
        {
            Run r = cli(dir, {"--help"});
            check(r.code == 0 && has(r.out, "exit codes") && has(r.out, "failover report"), r, "help with the exit codes, exit 0");
            r = cli(dir, {});
            check(r.code == 2, r, "no command: exit 2");
            r = cli(dir, {"frobnicate"});
            check(r.code == 2 && has(r.err, "unknown command 'frobnicate'"), r, "unknown command: exit 2");
            r = cli(dir, {"ask", "--config", ask_json.string(), "--no-such-flag", "hi"});
            check(r.code == 2 && has(r.err, "unknown option --no-such-flag"), r, "unknown option: exit 2");
            r = cli(dir, {"ask", "--config", ask_json.string()});
            check(r.code == 2 && has(r.err, "prompt is empty"), r, "no prompt (stdin empty): exit 2");
            r = cli(dir, {"ask", "hi"});
            check(r.code == 2 && has(r.err, "--config"), r, "no config: exit 2 naming --config");
            r = cli(dir, {"report", "--help"});
            check(r.code == 0 && has(r.out, "--min-schema-valid") && has(r.out, "--max-cost-per-case-usd"), r,
                  "report help lists the threshold flags");
        }

        // ---------------------------------------------------------------- ask
        {
            const std::size_t primary_before = mock.route("a-primary").requests();
            Run r = cli(dir, {"ask", "--config", ask_json.string(), "What is the capital of France?"});
            check(r.code == 0, r, "exit 0");
            check(r.out == "Paris is the capital of France.\n", r, "stdout holds exactly the answer");
            check(has(r.err, "--- journey: 3 attempts"), r, "a journey of 3 attempts");
            const std::string first = line_with(r.err, "  1  a-primary");
            check(has(first, "server_error (transient)") && has(first, "500"), r, "attempt 1: a-primary, server_error, 500");
            check(has(line_with(r.err, "  2  a-primary"), "500"), r, "attempt 2: a-primary again, 500");
            const std::string third = line_with(r.err, "  3  a-secondary");
            check(has(third, " ok ") && has(third, "$0.000") && !has(third, "$0.000000"), r, "attempt 3: a-secondary ok with its cost");
            check(has(r.err, "answered by a-secondary") && has(r.err, "after 1 route failed"), r, "which route answered");
            check(!has(r.err, "canned"), r, "the canned route was not reached");
            check(mock.route("a-primary").requests() == primary_before + 2, r, "two requests to the primary");
            const auto last = mock.route("a-secondary").last_request();
            check(last && last->header("x-api-key") && *last->header("x-api-key") == kSecret, r,
                  "the key from the env var named in the config was sent");
        }
        {
            Run r = cli(dir, {"ask", "--stream", "--config", ask_json.string(), "What is the capital of France?"});
            check(r.code == 0 && r.out == "Paris is the capital of France.\n", r, "streamed answer on stdout, exit 0");
            check(has(r.err, "answered by a-secondary") && has(r.err, "--- journey: 3 attempts"), r, "the journey after a stream");
            const auto last = mock.route("a-secondary").last_request();
            check(last && last->json().value("stream", false), r, "the request asked for a stream");
        }
        {
            const fs::path schema = dir / "invoice.schema.json";
            write(schema, R"({"type": "object", "properties": {"vendor": {"type": "string"}, "total": {"type": "number"},
                              "currency": {"type": "string"}}, "required": ["vendor", "total", "currency"]})");
            Run r = cli(dir, {"ask", "--config", ask_json.string(), "--schema", schema.string(),
                              "Extract the invoice fields: ACME Corp, total 12.50 EUR"});
            const Json answer = Json::parse(r.out, nullptr, false);
            check(r.code == 0 && answer == Json{{"vendor", "ACME Corp"}, {"total", 12.5}, {"currency", "EUR"}}, r,
                  "the structured answer as JSON on stdout");
            write(dir / "bad.schema.json", R"({"type": "object", "properties": {"a": {"type": "strnig"}}})");
            r = cli(dir, {"ask", "--config", ask_json.string(), "--schema", (dir / "bad.schema.json").string(), "hi"});
            check(r.code == 2 && has(r.err, "/properties/a"), r, "a bad schema: exit 2 with its pointer");
        }
        {
            Run r = cli(dir, {"ask", "--json", "--tenant", "acme", "--config", ask_json.string(), "What is the capital of France?"});
            const Json j = Json::parse(r.out, nullptr, false);
            check(r.code == 0 && j.is_object() && j.value("ok", false) && j.value("route", "") == "a-secondary", r,
                  "--json: ok, answered by a-secondary");
            check(j.is_object() && j["attempts"].size() == 3 && j["attempts"][0]["reason"] == "server_error" &&
                      j["attempts"][0]["status"] == 500 && j["attempts"][2]["ok"] == true &&
                      j["attempts"][2]["cost_usd"].is_number() && j["attempts"][2]["cost_usd"].get<double>() > 0.0,
                  r, "--json: the three attempts, the last with its cost");
            check(j.is_object() && j["text"] == "Paris is the capital of France.", r, "--json: the text");
        }
        {
            Run r = cli(dir, {"ask", "--config", down_json.string(), "What is the capital of France?"});
            check(r.code == 1 && r.out.empty() && has(r.err, "no route answered: server_error (HTTP 500) from a-primary"), r,
                  "nothing answers: exit 1 and why");
            check(has(r.err, "--- journey: 2 attempts"), r, "the failed journey is shown too");
            r = cli(dir, {"ask", "--json", "--config", down_json.string(), "What is the capital of France?"});
            const Json j = Json::parse(r.out, nullptr, false);
            check(r.code == 1 && j.is_object() && j["ok"] == false && j["failure"]["reason"] == "server_error", r,
                  "--json failure: exit 1, the reason");
        }

        // ---------------------------------------------------------------- check
        {
            Run r = cli(dir, {"check", "--config", ask_json.string()});
            check(r.code == 1, r, "an unhealthy route: exit 1");
            const std::string primary = line_with(r.out, "a-primary");
            check(has(primary, "openai") && has(primary, "gpt-4o-mini") && has(primary, "FAIL 500") && has(primary, "server_error"),
                  r, "the table: a-primary openai gpt-4o-mini FAIL 500 server_error");
            const std::string secondary = line_with(r.out, "a-secondary");
            check(has(secondary, "anthropic") && has(secondary, "claude-sonnet-4-5") && has(secondary, " ok "), r,
                  "the table: a-secondary healthy");
            check(has(line_with(r.out, "canned"), "local"), r, "the static route is local, not probed");
            check(has(r.out, "unhealthy: 1 of 2 probed routes answered"), r, "the verdict");
            const auto probe = mock.route("a-secondary").last_request();
            const Json body = probe ? probe->json() : Json();
            check(body.is_object() && body.value("max_tokens", 0) == 8, r, "the probe asks for 8 tokens");

            const std::size_t before = mock.requests();
            r = cli(dir, {"check", "--no-probe", "--config", ask_json.string()});
            check(r.code == 0 && has(r.out, "valid, 3 routes") && has(line_with(r.out, "a-primary"), "not probed"), r,
                  "--no-probe: valid, exit 0");
            check(mock.requests() == before, r, "--no-probe sends nothing");
        }
        {
            const auto bad = [&](const std::string& name, Json config, const std::string& pointer, const std::string& also) {
                const fs::path p = dir / (name + ".json");
                write(p, config.dump(2));
                Run r = cli(dir, {"check", "--config", p.string()});
                check(r.code == 2 && has(r.err, pointer) && has(r.err, also), r, "exit 2 naming " + pointer);
                r = cli(dir, {"check", "--json", "--config", p.string()});
                const Json j = Json::parse(r.out, nullptr, false);
                check(r.code == 2 && j.is_object() && j["config_valid"] == false && j["pointer"] == pointer, r,
                      "--json: config_valid false, pointer " + pointer);
                r = cli(dir, {"ask", "--config", p.string(), "hi"});
                check(r.code == 2 && has(r.err, pointer), r, "ask refuses it too: exit 2");
            };
            Json typo = ask_config;
            typo["routes"][0]["options"]["max_atempts"] = 3;
            bad("typo", typo, "/routes/0/options/max_atempts", "");
            Json literal = ask_config;
            literal["routes"][1]["api_key_env"] = "sk-ant-api03-0123456789abcdefABCDEF0123456789";
            bad("literal", literal, "/routes/1/api_key_env", "");
            Json unset = ask_config;
            unset["routes"][0]["api_key_env"] = "FAILOVER_CLI_UNSET_VARIABLE";
            bad("unset", unset, "/routes/0/api_key_env", "FAILOVER_CLI_UNSET_VARIABLE");
            check(!has(all_output, "0123456789abcdefABCDEF"), Run{"(all runs)", 0, "", ""}, "a literal key is never echoed");
            write(dir / "syntax.json", "{\"routes\": [\n  {\"name\": \"x\",}\n]}");
            Run r = cli(dir, {"check", "--config", (dir / "syntax.json").string()});
            check(r.code == 2 && has(r.err, "line 2"), r, "text that is not JSON: exit 2 with its line");
        }

        // ---------------------------------------------------------------- report
        std::vector<Json> cases;
        {
            std::ifstream in(source / "examples" / "report" / "cases.jsonl");
            for (std::string line; std::getline(in, line);)
                if (!line.empty()) cases.push_back(Json::parse(line));
        }
        if (cases.size() != 10) throw std::runtime_error("examples/report/cases.jsonl: expected 10 cases");
        const auto give = [&](const std::string& name, const std::map<std::string, Fault>& answers) {
            for (const Json& c : cases) mock.route(name).answer(key_of(c), answers.at(c["id"].get<std::string>()));
        };
        give("r-primary", good_answers(false));
        give("r-secondary", good_answers(true));
        give("r-gemini", good_answers(false));
        give("r-cheap", worse_answers());
        const Json report_config{
            {"version", 1},
            {"routes",
             {route("r-primary", "openai", "gpt-4o", mock.url("r-primary") + "/v1", {{"price", price(2.5, 10.0)}}),
              route("r-secondary", "anthropic", "claude-sonnet-4-5", mock.url("r-secondary"), {{"price", price(3.0, 15.0)}}),
              route("r-gemini", "gemini", "gemini-2.5-flash", mock.url("r-gemini"), {{"price", price(0.3, 2.5)}}),
              route("r-cheap", "openai", "gpt-4o-mini", mock.url("r-cheap") + "/v1", {{"price", price(0.1, 0.4)}})}}};
        const fs::path report_json = dir / "report-chain.json";
        write(report_json, report_config.dump(2));
        const std::string cases_file = (source / "examples" / "report" / "cases.jsonl").string();
        {
            Run r = cli(dir, {"check", "--json", "--config", report_json.string()});
            const Json j = Json::parse(r.out, nullptr, false);
            check(r.code == 0 && j.is_object() && j["unhealthy"] == 0 && j["routes"].size() == 4 &&
                      j["routes"][2]["provider"] == "gemini" && j["routes"][2]["ok"] == true,
                  r, "check --json on a healthy chain: exit 0, four routes ok");
        }
        {
            const fs::path out = dir / "card";
            Run r = cli(dir, {"report", "--config", report_json.string(), cases_file, "--out", out.string(), "--concurrency", "3",
                              "--min-schema-valid", "0.9", "--min-tool-calls-valid", "90%", "--min-tool-calls-expected", "0.9",
                              "--min-expected-content", "0.9", "--min-agreement", "0.8", "--max-refusals", "0.05",
                              "--max-errors", "5%", "--max-latency-p99-ms", "120000", "--max-cost-per-case-usd", "1"});
            check(r.code == 1, r, "a breached threshold: exit 1");
            check(has(r.err, "failover: 7 thresholds breached:"), r, "seven breaches listed");
            std::size_t breach_lines = 0;
            bool only_cheap = true;
            {
                std::istringstream in(r.err.substr(std::min(r.err.size(), r.err.find("thresholds breached:"))));
                std::string line;
                std::getline(in, line);
                while (std::getline(in, line)) {
                    ++breach_lines;
                    only_cheap = only_cheap && line.rfind("  r-cheap: ", 0) == 0;
                }
            }
            check(breach_lines == 7 && only_cheap, r, "every breach names r-cheap, and only it");
            check(has(r.err, "r-cheap: schema_valid 66.7 % below the minimum 90.0 %"), r, "the schema breach, described");
            check(has(r.err, "report: 40/40 requests done (100%)") && !has(r.err, "\r"), r,
                  "plain progress lines when stderr is not a terminal");
            check(has(r.out, "| r-primary (primary) |"), r, "the markdown table on stdout");
            check(has(r.out, "| r-cheap |"), r, "the worse route's row");
            check(fs::exists(out / "report.md") && slurp(out / "report.md") == r.out, r, "report.md is what was printed");
            const Json j = Json::parse(slurp(out / "report.json"), nullptr, false);
            check(j.is_object() && j["passed"] == false && j["routes"].size() == 4 && j["cases"].size() == 10, r,
                  "report.json: four routes, ten cases, not passed");
            const std::string html = slurp(out / "report.html");
            check(count(html, "<svg") == 10, r, "report.html: one <svg> per measure (10)");
            for (const char* m : {"schema_valid", "tool_calls_valid", "tool_calls_expected", "expected_content", "agreement",
                                  "refusals", "errors", "latency_p50_ms", "latency_p99_ms", "cost_per_case_usd"})
                check(count(html, std::string("data-measure=\"") + m + "\"") == 1, r, std::string("report.html: a chart of ") + m);
        }
        {
            const fs::path out = dir / "lenient";
            Run r = cli(dir, {"report", "-q", "--config", report_json.string(), cases_file, "--out", out.string(),
                              "--max-latency-p99-ms", "600000"});
            check(r.code == 0 && r.err.empty() && fs::exists(out / "report.html"), r, "no breach: exit 0, quiet");
        }
        {
            write(dir / "bad-cases.jsonl", "{\"id\": \"a\", \"prompt\": \"hi\"}\n{\"id\": \"b\", \"prompt\": \"hi\", \"expect\": 1}\n");
            Run r = cli(dir, {"report", "--config", report_json.string(), (dir / "bad-cases.jsonl").string()});
            check(r.code == 2 && has(r.err, "line 2"), r, "a bad cases file: exit 2 naming the line");
            r = cli(dir, {"report", "--config", report_json.string(), cases_file, "--min-agreement", "1.5"});
            check(r.code == 2 && has(r.err, "--min-agreement"), r, "a rate above 1: exit 2");
            r = cli(dir, {"report", "--config", report_json.string(), cases_file, "--max-errors", "lots"});
            check(r.code == 2 && has(r.err, "--max-errors"), r, "not a number: exit 2");
            write(dir / "a-file", "");
            r = cli(dir, {"report", "-q", "--config", report_json.string(), cases_file, "--out", (dir / "a-file" / "sub").string()});
            check(r.code == 3, r, "an output folder that cannot be made: exit 3");
        }

        check(!has(all_output, kSecret), Run{"(all runs)", 0, "", ""}, "the API key never appears in any output");
        if (failures == 0) fs::remove_all(dir);
        else std::cerr << "kept " << dir.string() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "cli_test_driver: " << e.what() << "\n";
        return 1;
    }
    if (failures != 0) {
        std::cerr << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "failover CLI: all checks passed\n";
    return 0;
}
