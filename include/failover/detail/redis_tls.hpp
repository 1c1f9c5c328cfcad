// SPDX-License-Identifier: MIT
// TLS for RedisStore over any hiredis: hiredis before 1.0 (Debian 12 ships
// 0.14) cannot speak TLS, but it can use a connected descriptor. TlsPipe
// connects to Redis over TCP, completes a verified TLS handshake with OpenSSL
// (certificate chain against the given CA file or the system's, and the host
// name or IP address), and hands hiredis one end of a socketpair; a thread
// moves bytes between that socketpair and the TLS session until either side
// closes. Blocking hiredis calls keep their timeouts (they apply to the
// socketpair), and closing the hiredis context ends the thread. A peer that
// went away is an error here, never a SIGPIPE: the pump blocks the signal on
// its own thread and sends to the socketpair with MSG_NOSIGNAL.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::redis {

class TlsPipe {
public:
    /// Connects and handshakes within `timeout`; on failure, `error` says why and fd() is -1.
    TlsPipe(const std::string& host, int port, const std::string& ca_file, const std::string& server_name,
            std::chrono::milliseconds timeout, std::string& error) {
        establish(host, port, ca_file, server_name, timeout, error);
    }
    ~TlsPipe() {
        if (thread_.joinable()) {
            // hiredis closed its end (plain_), or will: shut ours so the pump ends either way.
            ::shutdown(mine_, SHUT_RDWR);
            ::shutdown(tcp_, SHUT_RDWR);  // and one waiting in SSL_read
            thread_.join();
        }
        if (ssl_) SSL_free(ssl_);
        if (ctx_) SSL_CTX_free(ctx_);
        if (tcp_ >= 0) ::close(tcp_);
        if (mine_ >= 0) ::close(mine_);
    }
    TlsPipe(const TlsPipe&) = delete;
    TlsPipe& operator=(const TlsPipe&) = delete;

    /// The descriptor to give hiredis (redisConnectFd takes ownership), or -1 after a failure.
    int release_fd() noexcept { return std::exchange(plain_, -1); }

private:
    void establish(const std::string& host, int port, const std::string& ca_file, const std::string& server_name,
              std::chrono::milliseconds timeout, std::string& error) {
        if (!connect_tcp(host, port, timeout, error)) return;
        ctx_ = SSL_CTX_new(TLS_client_method());
        if (!ctx_) return fail("TLS: no context", error);
        SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        // SSL_read on the blocking socket must return after a record that carries no data
        // (TLS 1.3 session tickets arrive after the handshake): with the default auto-retry it
        // would wait in read() for the next record, while a command hiredis wrote waits in the
        // socketpair for the pump to forward it, and the reply never comes.
        SSL_CTX_clear_mode(ctx_, SSL_MODE_AUTO_RETRY);
        const int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                                           : SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
        if (loaded != 1) return fail("TLS: cannot load CA certificates from '" + ca_file + "'", error);
        ssl_ = SSL_new(ctx_);
        if (!ssl_) return fail("TLS: no session", error);
        const std::string name = server_name.empty() ? host : server_name;
        in6_addr a6{};
        in_addr a4{};
        const bool is_ip = ::inet_pton(AF_INET, name.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, name.c_str(), &a6) == 1;
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        // Without the name check a valid certificate for any name would do: a failure to set it
        // is a failure to connect.
        const bool named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
                                 : SSL_set_tlsext_host_name(ssl_, name.c_str()) == 1 &&
                                       X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1;
        if (!named) return fail("TLS: cannot check the server's name '" + name + "'", error);
        SSL_set_fd(ssl_, tcp_);
        // The handshake on a blocking socket with a receive/send timeout.
        timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(tcp_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(tcp_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (SSL_connect(ssl_) != 1) {
            const long v = SSL_get_verify_result(ssl_);
            return fail(v != X509_V_OK ? std::string("TLS: certificate not accepted: ") + X509_verify_cert_error_string(v)
                                       : "TLS: handshake failed: " + last_ssl_error(),
                        error);
        }
        timeval none{0, 0};
        ::setsockopt(tcp_, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        ::setsockopt(tcp_, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
        int sp[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return fail("TLS: socketpair failed", error);
        plain_ = sp[0];
        mine_ = sp[1];
        thread_ = std::thread([this] { pump(); });
    }

    void fail(std::string why, std::string& error) {
        error = std::move(why);
        ERR_clear_error();
    }
    static std::string last_ssl_error() {
        const unsigned long e = ERR_get_error();
        if (!e) return "connection closed";
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        return buf;
    }

    bool connect_tcp(const std::string& host, int port, std::chrono::milliseconds timeout, std::string& error) {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
            error = "connect: cannot resolve " + host;
            return false;
        }
        for (addrinfo* ai = res; ai; ai = ai->ai_next) {
            const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
            if (fd < 0) continue;
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
                ::close(fd);
                continue;
            }
            pollfd p{fd, POLLOUT, 0};
            int err = 0;
            socklen_t len = sizeof err;
            if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
                err == 0) {
                const int flags = ::fcntl(fd, F_GETFL);
                ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
                int one = 1;
                ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
                tcp_ = fd;
                break;
            }
            ::close(fd);
        }
        ::freeaddrinfo(res);
        if (tcp_ < 0) error = "connect: " + host + ":" + std::to_string(port) + " refused or timed out";
        return tcp_ >= 0;
    }

    // Plain bytes from hiredis go out encrypted; decrypted bytes go back to hiredis.
    void pump() {
        block_sigpipe();
        char buf[16384];
        for (;;) {
            if (SSL_pending(ssl_) == 0) {
                pollfd p[2] = {{mine_, POLLIN, 0}, {tcp_, POLLIN, 0}};
                if (::poll(p, 2, -1) < 0) {
                    if (errno == EINTR) continue;
                    break;
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                    const ssize_t n = ::read(mine_, buf, sizeof buf);
                    if (n <= 0) break;
                    if (SSL_write(ssl_, buf, static_cast<int>(n)) <= 0) break;
                }
                if (!(p[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            }
            const int n = SSL_read(ssl_, buf, sizeof buf);
            if (n <= 0) {
                const int e = SSL_get_error(ssl_, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;
                break;
            }
            if (!write_all(buf, static_cast<std::size_t>(n))) break;
        }
        ::shutdown(mine_, SHUT_RDWR);  // hiredis sees the end
    }
    bool write_all(const char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::send(mine_, p, n, MSG_NOSIGNAL);
            if (w <= 0) return false;
            p += w;
            n -= static_cast<std::size_t>(w);
        }
        return true;
    }

public:
    /// Writes to a socket whose peer has gone fail with EPIPE on the calling thread instead of
    /// raising SIGPIPE (which would end the process unless the application ignores it).
    static void block_sigpipe() noexcept {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &s, nullptr);
    }

private:
    int tcp_ = -1;
    int plain_ = -1;  // hiredis's end
    int mine_ = -1;   // the pump's end
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    std::thread thread_{};
};

}  // namespace detail::redis
FAILOVER_END_NAMESPACE
