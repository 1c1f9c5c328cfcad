// SPDX-License-Identifier: MIT
// Shared pieces of the benchmark programs: the typical ~1 KB exchange (a chat
// request and each provider's canned answer to it), an in-memory transport,
// readers for a process's resident memory and CPU time from /proc, and
// percentiles. Benchmarks only: nothing here is part of the library.
#pragma once

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <failover/failover.hpp>

namespace bench {

/// Answers instantly with a canned response (a copy per call, as a real transport builds one).
struct MemoryTransport {
    failover::HttpResponse response;
    failover::Result<failover::HttpResponse> send(const failover::HttpRequest&, failover::Deadline) { return response; }
};

inline std::shared_ptr<MemoryTransport> memory_transport(int status, std::string body,
                                                         failover::Headers headers = {}) {
    auto t = std::make_shared<MemoryTransport>();
    t->response.status = status;
    t->response.body = std::move(body);
    t->response.headers = std::move(headers);
    return t;
}

/// The request of a typical exchange: a system prompt, a ~300-byte user turn, an output limit
/// and a temperature. Encoded it is ~650 bytes of JSON; with an answer, about 1 KB.
inline failover::ChatRequest typical_request() {
    failover::ChatRequest r;
    r.messages = {
        failover::system_prompt("You extract invoice fields for the accounts-payable team. Answer in one short "
                                "paragraph, quote amounts with their currency, and never invent a value."),
        failover::user("Here is the invoice text: Northwind Traders, invoice INV-2024-0117 dated 2024-03-14. "
                       "40 x part A-17 at 12.00 EUR, 15 x part B-03 at 21.30 EUR, service fee 485.00 EUR, "
                       "VAT 19 percent, total 1,284.50 EUR, payable within 30 days by bank transfer. "
                       "Summarise the total, the due date and the line items."),
    };
    r.max_tokens = 512;
    r.temperature = 0.2;
    r.tenant = "acme";
    return r;
}

/// The answer text of the typical exchange (~400 bytes; tests/benchmarks/mock_server.cpp sends the same).
inline const char* answer_text() {
    return "Invoice INV-2024-0117 from Northwind Traders totals 1,284.50 EUR including VAT at 19 percent. "
           "It lists three line items: 40 units of part A-17 at 12.00, 15 units of part B-03 at 21.30 and "
           "one service fee of 485.00. Payment is due within 30 days of the invoice date, 2024-03-14, by "
           "bank transfer to the account named on the second page. ";
}

/// OpenAI Chat Completions success body for the typical exchange.
inline std::string openai_answer() {
    return nlohmann::json{
        {"id", "chatcmpl-bench1"},
        {"object", "chat.completion"},
        {"created", 1760000000},
        {"model", "gpt-4o-2024-08-06"},
        {"choices",
         {{{"index", 0},
           {"message", {{"role", "assistant"}, {"content", answer_text()}, {"refusal", nullptr}}},
           {"logprobs", nullptr},
           {"finish_reason", "stop"}}}},
        {"usage",
         {{"prompt_tokens", 112},
          {"completion_tokens", 85},
          {"total_tokens", 197},
          {"prompt_tokens_details", {{"cached_tokens", 0}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}}},
        {"system_fingerprint", "fp_bench"}}
        .dump();
}

/// Anthropic Messages success body for the typical exchange.
inline std::string anthropic_answer() {
    return nlohmann::json{{"id", "msg_bench1"},
                          {"type", "message"},
                          {"role", "assistant"},
                          {"model", "claude-sonnet-4-5-20250929"},
                          {"content", {{{"type", "text"}, {"text", answer_text()}}}},
                          {"stop_reason", "end_turn"},
                          {"stop_sequence", nullptr},
                          {"usage",
                           {{"input_tokens", 112},
                            {"output_tokens", 85},
                            {"cache_creation_input_tokens", 0},
                            {"cache_read_input_tokens", 0}}}}
        .dump();
}

/// Gemini generateContent success body for the typical exchange.
inline std::string gemini_answer() {
    return nlohmann::json{
        {"candidates",
         {{{"content", {{"role", "model"}, {"parts", {{{"text", answer_text()}}}}}},
           {"finishReason", "STOP"},
           {"index", 0}}}},
        {"usageMetadata", {{"promptTokenCount", 112}, {"candidatesTokenCount", 85}, {"totalTokenCount", 197}}},
        {"modelVersion", "gemini-2.5-flash"}}
        .dump();
}

/// Response headers a provider typically sends with a JSON body.
inline failover::Headers json_response_headers() {
    return {{"content-type", "application/json"}, {"x-request-id", "req_bench_0001"}};
}

/// The value of `key` (in kB) in /proc/<pid>/status, e.g. VmRSS; -1 when unreadable.
inline long proc_status_kb(const std::string& pid, const std::string& key) {
    std::ifstream f("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.compare(0, key.size() + 1, key + ":") == 0) {
            std::istringstream in(line.substr(key.size() + 1));
            long kb = -1;
            in >> kb;
            return kb;
        }
    }
    return -1;
}

/// Resident memory of this process in kB.
inline long self_rss_kb() { return proc_status_kb("self", "VmRSS"); }

/// utime + stime of a process in seconds (from /proc/<pid>/stat); -1 when unreadable.
inline double proc_cpu_seconds(const std::string& pid) {
    std::ifstream f("/proc/" + pid + "/stat");
    std::string all;
    std::getline(f, all);
    // The command name (field 2) may hold spaces: fields are counted after its closing ')'.
    const auto close = all.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream in(all.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    const long hz = ::sysconf(_SC_CLK_TCK);
    return hz > 0 ? static_cast<double>(utime + stime) / static_cast<double>(hz) : -1;
}

/// CPU time consumed by the calling thread.
inline std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

/// The q-quantile (0..1, nearest rank) of `v`, in the same unit; sorts v. 0 when empty.
inline double percentile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const double n = std::ceil(q * static_cast<double>(v.size()));
    const auto rank = static_cast<std::size_t>(std::clamp(n, 1.0, static_cast<double>(v.size()))) - 1;
    return v[rank];
}

}  // namespace bench
