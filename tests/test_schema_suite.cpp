// SPDX-License-Identifier: MIT
// The official JSON-Schema-Test-Suite (draft 7), read at run time from the
// directory CMake names (FAILOVER_JSON_SCHEMA_TEST_SUITE; Debian's
// json-schema-test-suite by default, which tests/run installs), run through
// failover::Schema. Every required case must pass except the groups listed in
// required_skips, each with its reason; a skipped case that starts passing
// fails too, so the list cannot go stale. The optional cases (bignum,
// ecmascript-regex, formats, content, zeroTerminatedFloats) are counted, and
// may not drop below the counts README states. A missing suite is a failure,
// not a skip. Each case is judged by validate() and accepts(), which must agree.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <failover/schema.hpp>

#include "support/catch.hpp"

#ifndef FAILOVER_JSON_SCHEMA_TEST_SUITE
#error "FAILOVER_JSON_SCHEMA_TEST_SUITE must name the JSON-Schema-Test-Suite directory (tests/CMakeLists.txt sets it)"
#endif

namespace fs = std::filesystem;
using failover::Schema;
using nlohmann::json;

namespace {

struct Skip {
    std::string_view file;   ///< relative to tests/draft7
    std::string_view group;  ///< a group's description, or "*" for the whole file
    std::string_view reason;
};

// Required cases failover does not pass, on purpose.
constexpr Skip required_skips[] = {
    {"refRemote.json", "*",
     "remote $refs (http://localhost:1234/...) are refused at Schema::parse by design: the validator never "
     "fetches anything; the suite expects a web server on localhost:1234 serving its remotes/ folder"},
};

// What README states (Debian's suite 2.0.0); the suite may not do worse.
constexpr int required_passes_documented = 408;
constexpr int optional_passes_documented = 140;

const Skip* skip_for(const std::string& file, const std::string& group) {
    for (const Skip& s : required_skips)
        if (s.file == file && (s.group == "*" || s.group == group)) return &s;
    return nullptr;
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

fs::path suite_dir() { return fs::path(FAILOVER_JSON_SCHEMA_TEST_SUITE) / "tests" / "draft7"; }

std::vector<fs::path> files_under(const fs::path& dir, bool recursive) {
    std::vector<fs::path> out;
    if (recursive) {
        for (const auto& e : fs::recursive_directory_iterator(dir))
            if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
    } else {
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

struct Case {
    std::string file, group, test;
    bool passed = false;
    std::string why;  // when it did not pass
};

// Runs every case of one suite file.
std::vector<Case> run_file(const fs::path& path) {
    std::vector<Case> out;
    const std::string rel = path.lexically_relative(suite_dir()).generic_string();
    const json groups = json::parse(read(path));
    for (const json& g : groups) {
        std::shared_ptr<const Schema> schema;
        std::string parse_error;
        try {
            schema = Schema::parse(g.at("schema"));
        } catch (const std::invalid_argument& e) {
            parse_error = e.what();
        }
        for (const json& t : g.at("tests")) {
            Case c{rel, g.at("description").get<std::string>(), t.at("description").get<std::string>(), false, {}};
            const bool expected = t.at("valid").get<bool>();
            if (!schema) {
                c.why = "parse refused the schema: " + parse_error;
            } else {
                const auto errors = schema->validate(t.at("data"));
                const bool accepted = schema->accepts(t.at("data"));
                if (accepted != errors.empty()) c.why = "accepts() and validate() disagree";
                else if (accepted != expected) c.why = expected ? "valid value rejected: " + errors.front().message
                                                               : "invalid value accepted";
                else c.passed = true;
            }
            out.push_back(std::move(c));
        }
    }
    return out;
}

}  // namespace

TEST_CASE("JSON-Schema-Test-Suite draft 7: every required case passes but the documented skips", "[schema][suite]") {
    INFO("suite directory: " << suite_dir().string()
                             << " (Debian: apt-get install json-schema-test-suite; tests/run installs it)");
    REQUIRE(fs::is_directory(suite_dir()));
    const auto files = files_under(suite_dir(), false);
    REQUIRE(files.size() >= 30);

    int passed = 0, failed = 0, skipped = 0;
    for (const fs::path& f : files) {
        for (const Case& c : run_file(f)) {
            INFO(c.file << " | " << c.group << " | " << c.test << " | " << c.why);
            if (const Skip* s = skip_for(c.file, c.group)) {
                ++skipped;
                INFO("skipped because " << s->reason);
                CHECK_FALSE(c.passed);  // a skip that passes is a stale skip
                if (c.file == "refRemote.json") CHECK(c.why.find("remote references are not fetched") != std::string::npos);
                continue;
            }
            CHECK(c.passed);
            (c.passed ? passed : failed)++;
        }
    }
    std::cout << "JSON-Schema-Test-Suite draft7 required: " << passed << " passed, " << failed << " failed, "
              << skipped << " skipped by design (refRemote.json: remote refs refused)\n";
    CHECK(failed == 0);
    CHECK(passed >= required_passes_documented);
}

TEST_CASE("JSON-Schema-Test-Suite draft 7 optional: counts", "[schema][suite]") {
    REQUIRE(fs::is_directory(suite_dir() / "optional"));
    std::map<std::string, std::pair<int, int>> per_file;  // passed, total
    int passed = 0, total = 0;
    for (const fs::path& f : files_under(suite_dir() / "optional", true)) {
        for (const Case& c : run_file(f)) {
            auto& [p, t] = per_file[c.file];
            ++t;
            ++total;
            if (c.passed) {
                ++p;
                ++passed;
            } else {
                std::cout << "  optional, not passed: " << c.file << " | " << c.group << " | " << c.test << " | "
                          << c.why << "\n";
            }
        }
    }
    for (const auto& [file, counts] : per_file)
        std::cout << "  " << file << ": " << counts.first << "/" << counts.second << "\n";
    std::cout << "JSON-Schema-Test-Suite draft7 optional: " << passed << "/" << total << " passed\n";
    CHECK(total > 0);
    CHECK(passed >= optional_passes_documented);
}
