/*
 * C epoll echo server: the reference line of the echo tables.
 *
 * Single-threaded, level-triggered epoll, like the Python loops it is
 * compared with: read what is there, write it straight back; what the socket
 * does not take is kept and the connection stops reading until it has gone
 * out (back-pressure, as a Protocol server gets from pause_reading).  Its
 * rate is the ceiling of this machine for the load generator: if the loops'
 * rates come near it, the load generator is the bottleneck, not them.
 *
 *   echo_server [--port 0] [--backlog 4096] [--max-seconds S]
 *
 * Prints "READY <port>" once listening on 127.0.0.1, serves until its stdin
 * closes (or --max-seconds), then prints "DONE {...}".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define BUF_SIZE (256 * 1024)

struct conn {
    int fd;
    char *pending;       /* bytes read but not yet written back */
    size_t pending_len, pending_off;
};

static int ep;
static char buf[BUF_SIZE];
static unsigned long long accepted, errors;
static int listener_tag, stdin_tag;  /* addresses used as epoll tags */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what) {
    fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void drop(struct conn *c) {
    close(c->fd);  /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void watch(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl");
}

/* A reset (or a write after one) is how the load generator says goodbye: not an error. */
static int peer_gone(int err) { return err == ECONNRESET || err == EPIPE; }

/* Write buf[0:n] back; keep what the socket refuses. 0 = keep, -1 = dropped. */
static int echo(struct conn *c, const char *data, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, data + off, n - off, MSG_NOSIGNAL);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w == 0 || !peer_gone(errno)) errors++;
        drop(c);
        return -1;
    }
    if (off < n) {
        c->pending = malloc(n - off);
        if (!c->pending) { errors++; drop(c); return -1; }
        memcpy(c->pending, data + off, n - off);
        c->pending_len = n - off;
        c->pending_off = 0;
        watch(c, EPOLLOUT);  /* stop reading until this has gone out */
    }
    return 0;
}

static void on_writable(struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t w = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off,
                         MSG_NOSIGNAL);
        if (w > 0) { c->pending_off += (size_t)w; continue; }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w == 0 || !peer_gone(errno)) errors++;
        drop(c);
        return;
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    watch(c, EPOLLIN);
}

static void on_readable(struct conn *c) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0) { echo(c, buf, (size_t)n); return; }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && !peer_gone(errno)) errors++;
    drop(c);
}

static void on_accept(int lfd) {
    int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) errors++;
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); errors++; continue; }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl");
        accepted++;
    }
}

int main(int argc, char **argv) {
    int port = 0, backlog = 4096;
    double max_seconds = 600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backlog")) backlog = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "echo_server: unknown option %s\n", argv[i]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) fail("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) fail("bind");
    if (listen(lfd, backlog) < 0) fail("listen");
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) fail("epoll_ctl");
    ev.data.ptr = &stdin_tag;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);  /* stdin closing is the signal to stop */

    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    uint64_t end = now_ns() + (uint64_t)(max_seconds * 1e9);
    int running = 1;
    while (running && now_ns() < end) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &listener_tag) { on_accept(lfd); continue; }
            if (tag == &stdin_tag) {
                char b[64];
                if (read(0, b, sizeof b) <= 0) running = 0;
                continue;
            }
            struct conn *c = tag;
            /* With output pending the connection is not reading: only writes (or their error). */
            if (c->pending) on_writable(c);
            else on_readable(c);
        }
    }
    printf("DONE {\"accepted\": %llu, \"errors\": %llu}\n", accepted, errors);
    return 0;
}
