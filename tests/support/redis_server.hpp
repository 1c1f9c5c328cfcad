// SPDX-License-Identifier: MIT
// A real redis-server for the tests: started on a free loopback port, with no
// persistence, optionally with a password; stopped (SIGKILL: the fastest
// "Redis died") and started again on the same port at will.
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace failover_test {

inline int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("no free loopback port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

/// Spawns `argv` (argv[0] looked up on PATH) with its output discarded; returns the pid.
inline pid_t spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0] + " (on Debian: apt-get install redis-server)");
    return pid;
}

/// A TLS listener's certificate and key (PEM files).
struct RedisTls {
    std::string cert;
    std::string key;
};

class RedisServer {
public:
    explicit RedisServer(std::string password = {}, std::optional<RedisTls> tls = std::nullopt)
        : port_(free_loopback_port()), password_(std::move(password)), tls_(std::move(tls)) {
        start();
    }
    ~RedisServer() { kill(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    int port() const noexcept { return port_; }

    void start() {
        std::vector<std::string> args{"redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--loglevel", "warning"};
        if (tls_) {
            for (const char* a : {"--port", "0", "--tls-auth-clients", "no"}) args.emplace_back(a);
            args.insert(args.end(), {"--tls-port", std::to_string(port_), "--tls-cert-file", tls_->cert, "--tls-key-file",
                                     tls_->key, "--tls-ca-cert-file", tls_->cert});
        } else {
            args.insert(args.end(), {"--port", std::to_string(port_)});
        }
        if (!password_.empty()) {
            args.push_back("--requirepass");
            args.push_back(password_);
        }
        pid_ = spawn(args);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{10};
        while (std::chrono::steady_clock::now() < until) {
            if (ping()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds{5});
        }
        kill();
        throw std::runtime_error("redis-server did not answer on port " + std::to_string(port_));
    }
    /// SIGKILL: the server vanishes with everything it held.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    /// SIGSTOP / SIGCONT: a server that accepts and then never answers (hung or very slow).
    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }

    /// One command on a fresh connection (for assertions); the reply as a string or integer text.
    std::string command(const std::vector<std::string>& args) const {
        redisContext* c = connect();
        if (!c) return "<no connection>";
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
        std::string out;
        if (!r) out = "<error>";
        else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
            out.assign(r->str, r->len);
        else if (r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
        else if (r->type == REDIS_REPLY_NIL) out = "<nil>";
        else out = "<array>";
        if (r) freeReplyObject(r);
        redisFree(c);
        return out;
    }

private:
    redisContext* connect() const {
        timeval tv{1, 0};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        if (!c || c->err) {
            if (c) redisFree(c);
            return nullptr;
        }
        if (!password_.empty()) {
            auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password_.c_str()));
            if (r) freeReplyObject(r);
        }
        return c;
    }
    // Plain: PING answers. TLS: the port accepts connections (this helper speaks no TLS).
    bool ping() const {
        if (!tls_) return command({"PING"}) == "PONG";
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<std::uint16_t>(port_));
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    int port_;
    std::string password_;
    std::optional<RedisTls> tls_;
    pid_t pid_ = -1;
};

}  // namespace failover_test
