// SPDX-License-Identifier: MIT
// failover_mock_server: a MockProvider in its own process, for benchmarks whose
// client and server must not share a process (the end-to-end latency and RSS
// figures, and the peer gateway, which needs an upstream that outlives any one
// benchmark binary). It binds 127.0.0.1 only, prints its port on the first line
// of stdout, and serves until stdin reaches end of file or SIGTERM/SIGINT/SIGHUP
// arrives. Routes, under http://127.0.0.1:<port>/<route>/v1/chat/completions
// (or any other wire format MockProvider speaks):
//   ok    200 with a ~400-byte answer (a typical ~1 KB exchange with the request)
//   fail  503 with the provider's error body (the failing primary of a fallback)
//   long1m, long16m  1 MiB / 16 MiB of text (asked for a stream: in 64-byte pieces)
// Usage: failover_mock_server [--no-stdin]   (--no-stdin: ignore stdin, stop on a signal only;
// needed for a plain `cmd &` in a script, whose stdin is /dev/null and would end it at once.
// tests/benchmarks/run starts it as a coprocess, so it also stops if the script dies.)
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include "mock_routes.hpp"

int main(int argc, char** argv) {
    bool watch_stdin = true;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-stdin") == 0) {
            watch_stdin = false;
        } else {
            std::fprintf(stderr, "usage: %s [--no-stdin]\n", argv[0]);
            return 2;
        }
    }

    // Block the stop signals before any thread starts, so every thread inherits the mask
    // and the signals queue on the signalfd instead of killing the process mid-reply.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0) return 1;
    // A client that goes away mid-reply must not kill the server.
    ::signal(SIGPIPE, SIG_IGN);
    const int sfd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (sfd < 0) {
        std::perror("failover_mock_server: signalfd");
        return 1;
    }

    try {
        failover_mock::MockProvider mock;
        bench::configure_routes(mock);
        std::printf("%u\n", static_cast<unsigned>(mock.port()));
        std::fflush(stdout);

        for (;;) {
            pollfd fds[2] = {{sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
            const int n = ::poll(fds, watch_stdin ? 2 : 1, -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                std::perror("failover_mock_server: poll");
                break;
            }
            if (fds[0].revents & POLLIN) break;  // a stop signal
            if (watch_stdin && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[256];
                const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
                if (got <= 0 && !(got < 0 && errno == EINTR)) break;  // end of file (or an error): stop
            }
        }
        std::fprintf(stderr, "failover_mock_server: %zu requests served, stopping\n", mock.requests());
        mock.stop();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "failover_mock_server: %s\n", e.what());
        ::close(sfd);
        return 1;
    }
    ::close(sfd);
    return 0;
}
