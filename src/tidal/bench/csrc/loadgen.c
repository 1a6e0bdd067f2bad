/*
 * tidal bench load generator: N connections to a server on the loopback, each
 * one sending a message and waiting for the whole reply before it sends the
 * next (a closed loop, so the measured rate is what the server sustains).
 *
 * It is C, single-threaded on epoll, so that it is never the bottleneck of a
 * Python server: the bench checks that by also running it against a C epoll
 * echo server (echo_server.c), whose rate must be well above any loop's.
 * tidal.bench compiles it at bench time with the machine's cc.
 *
 *   loadgen --port P --conns N --size BYTES --warmup S --duration S [--mode echo|http|hold]
 *           [--cpu-pid PID]
 *
 *   echo  send BYTES of a known pattern, expect the same bytes back (checked).
 *   http  send "GET / HTTP/1.1", expect one response (Content-Length body).
 *   hold  one echo round trip per connection, print "HELD N", then keep the
 *         connections open and idle until stdin closes (or --hold-seconds).
 *
 * Phases: connect all (a bounded number of connects in flight, so a server's
 * accept queue never overflows into SYN retransmits); warm up (every
 * connection busy, nothing counted) for --warmup seconds and until every
 * connection has had a reply, so a server still accepting thousands of
 * connections is not measured; measure for --duration (replies that
 * complete in the window are counted and their latencies kept); close with
 * RST (SO_LINGER 0) so thousands of runs leave no TIME_WAIT behind to exhaust
 * the ephemeral ports.  Output: one JSON object on stdout; errors on stderr
 * and a non-zero exit.
 *
 * --cpu-pid: the server's process; its CPU time (user + system, all its
 * threads) is read as the window opens and as it closes, and reported as
 * server_cpu_s (-1 when not asked for or not readable).  On a machine shared
 * with other work the rate moves with what else runs; the server's CPU per
 * reply much less.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_ECHO, MODE_HTTP, MODE_HOLD };
enum state { CONNECTING, READY, BUSY };

#define MAX_CONNECTS_IN_FLIGHT 256
#define MAX_EVENTS 1024
#define RBUF_SIZE (256 * 1024)
#define HDR_MAX 8192
#define MAX_SAMPLES (64u * 1024 * 1024)

struct conn {
    int fd;
    int state;
    int want_out;        /* EPOLLOUT is registered (a write would block) */
    int answered;        /* has had at least one reply */
    size_t sent;         /* bytes of the current request written */
    size_t received;     /* bytes of the current reply read */
    size_t expect;       /* reply length; 0 while an HTTP header is incomplete */
    uint64_t t_start;    /* when the current request began (ns) */
    char *hdr;           /* HTTP: the reply's header so far */
    size_t hdr_len;
};

static struct {
    const char *host;
    int port;
    int conns;
    size_t size;
    double warmup, duration, connect_timeout, hold_seconds;
    int mode;
    int cpu_pid;
} cfg = {"127.0.0.1", 0, 10, 1024, 0.2, 1.0, 30.0, 600.0, MODE_ECHO, 0};

static struct conn *conns;
static int ep;
static char *msg;        /* the request every connection sends */
static size_t msg_len;
static char *rbuf;
static uint32_t *samples; /* latencies in ns (clamped), for the percentiles */
static size_t n_samples, cap_samples;
static unsigned long long counted;  /* replies completed inside the window */
static uint64_t window_start, window_end;
static int answered;     /* connections that have had at least one reply */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_events(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void start_connect(struct conn *c, const struct sockaddr_in *addr) {
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s (raise the fd limit?)", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
}

static void try_send(struct conn *c) {
    while (c->sent < msg_len) {
        ssize_t n = send(c->fd, msg + c->sent, msg_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = 1;
                set_events(c, EPOLLIN | EPOLLOUT);
            }
            return;
        } else {
            die("send: %s", n < 0 ? strerror(errno) : "wrote nothing");
        }
    }
    if (c->want_out) {
        c->want_out = 0;
        set_events(c, EPOLLIN);
    }
}

static void begin_request(struct conn *c, uint64_t now) {
    c->state = BUSY;
    c->sent = 0;
    c->received = 0;
    c->expect = cfg.mode == MODE_HTTP ? 0 : msg_len;
    c->hdr_len = 0;
    c->t_start = now;
    try_send(c);
}

static void record(uint64_t start, uint64_t end) {
    if (end < window_start || end >= window_end) return;
    counted++;
    if (n_samples == cap_samples) {
        if (cap_samples >= MAX_SAMPLES) return;
        cap_samples = cap_samples ? cap_samples * 2 : 65536;
        samples = realloc(samples, cap_samples * sizeof *samples);
        if (!samples) die("out of memory");
    }
    uint64_t lat = end - start;
    samples[n_samples++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
}

/* HTTP: take header bytes until the blank line; then the reply's length is known. */
static size_t http_header(struct conn *c, const char *data, size_t n) {
    size_t take = n;
    if (c->hdr_len + take > HDR_MAX) take = HDR_MAX - c->hdr_len;
    memcpy(c->hdr + c->hdr_len, data, take);
    c->hdr_len += take;
    char *end = memmem(c->hdr, c->hdr_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->hdr_len == HDR_MAX) die("HTTP response header over %d bytes", HDR_MAX);
        return n;
    }
    size_t head = (size_t)(end - c->hdr) + 4;
    if (strncmp(c->hdr, "HTTP/1.1 200", 12) != 0) die("HTTP status is not 200: %.40s", c->hdr);
    size_t body = 0;
    for (char *line = c->hdr; line < end; ) {
        char *eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        if (strncasecmp(line, "content-length:", 15) == 0) body = strtoul(line + 15, NULL, 10);
        line = eol + 2;
    }
    c->expect = head + body;
    /* Bytes of this read that went into the header buffer beyond the header
       are body bytes: they count as received like the rest. */
    return n;
}

static void on_readable(struct conn *c, uint64_t *now) {
    ssize_t n = recv(c->fd, rbuf, RBUF_SIZE, 0);
    if (n == 0) die("the server closed a connection");
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        die("recv: %s", strerror(errno));
    }
    if (c->state != BUSY) die("the server sent %zd bytes nobody asked for", n);
    if (cfg.mode == MODE_HTTP && c->expect == 0) http_header(c, rbuf, (size_t)n);
    else if (cfg.mode != MODE_HTTP && memcmp(rbuf, msg + c->received, (size_t)n) != 0)
        die("the echo differs from what was sent");
    c->received += (size_t)n;
    if (c->expect && c->received > c->expect) die("the reply is longer than expected");
    if (c->expect == 0 || c->received < c->expect) return;
    *now = now_ns();
    if (!c->answered) {
        c->answered = 1;
        answered++;
    }
    if (cfg.mode == MODE_HOLD) {
        c->state = READY;  /* one round trip, then idle */
        return;
    }
    record(c->t_start, *now);
    if (*now < window_end) begin_request(c, *now);
    else c->state = READY;
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) die("%s needs a value", a);
        i++;
        if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--port")) cfg.port = atoi(v);
        else if (!strcmp(a, "--conns")) cfg.conns = atoi(v);
        else if (!strcmp(a, "--size")) cfg.size = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--warmup")) cfg.warmup = atof(v);
        else if (!strcmp(a, "--duration")) cfg.duration = atof(v);
        else if (!strcmp(a, "--connect-timeout")) cfg.connect_timeout = atof(v);
        else if (!strcmp(a, "--hold-seconds")) cfg.hold_seconds = atof(v);
        else if (!strcmp(a, "--cpu-pid")) cfg.cpu_pid = atoi(v);
        else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "echo")) cfg.mode = MODE_ECHO;
            else if (!strcmp(v, "http")) cfg.mode = MODE_HTTP;
            else if (!strcmp(v, "hold")) cfg.mode = MODE_HOLD;
            else die("unknown mode %s", v);
        } else die("unknown option %s", a);
    }
    if (cfg.port <= 0 || cfg.conns <= 0 || cfg.size == 0) die("need --port, --conns > 0, --size > 0");
}

/* CPU seconds process `pid` has run, all its threads: the sum of each
   thread's schedstat (nanoseconds), else utime + stime from its stat (clock
   ticks); -1 if neither can be read. */
static double proc_cpu_s(int pid) {
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d) {
        unsigned long long total = 0;
        int found = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[96];
            snprintf(p, sizeof p, "/proc/%d/task/%.20s/schedstat", pid, e->d_name);
            FILE *f = fopen(p, "r");
            if (!f) continue;
            unsigned long long ns;
            if (fscanf(f, "%llu", &ns) == 1) {
                total += ns;
                found = 1;
            }
            fclose(f);
        }
        closedir(d);
        if (found) return (double)total / 1e9;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1.0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');  /* the command name may hold spaces */
    unsigned long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1.0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(double p) {
    if (!n_samples) return 0.0;
    return samples[(size_t)((double)(n_samples - 1) * p)] / 1000.0;
}

/* Serve events until `until` (ns); with `warm`, stop early once every
   connection has had a reply and `at_least` has passed. */
static void pump(uint64_t until, int warm, uint64_t at_least) {
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();
    while (now < until) {
        if (warm && answered == cfg.conns && now >= at_least) return;
        uint64_t wake = warm && answered == cfg.conns && at_least < until ? at_least : until;
        int timeout_ms = (int)((wake - now + 999999) / 1000000);
        if (warm && timeout_ms > 10) timeout_ms = 10;  /* re-check the counts often */
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, &now);
            if ((evs[i].events & EPOLLOUT) && c->state == BUSY) try_send(c);
        }
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    if (inet_pton(AF_INET, cfg.host, &addr.sin_addr) != 1) die("bad host %s", cfg.host);
    /* Loopback only: this is a load generator, it must never aim anywhere else. */
    if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127) die("refusing a non-loopback host %s", cfg.host);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (cfg.mode == MODE_HTTP) {
        static char req[256];
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n", cfg.host, cfg.port);
        msg = req;
        msg_len = strlen(req);
    } else {
        msg_len = cfg.size;
        msg = malloc(msg_len);
        if (!msg) die("out of memory");
        for (size_t i = 0; i < msg_len; i++) msg[i] = (char)('a' + (i * 7 + i / 26) % 26);
    }
    rbuf = malloc(RBUF_SIZE);
    conns = calloc((size_t)cfg.conns, sizeof *conns);
    if (!rbuf || !conns) die("out of memory");
    for (int i = 0; i < cfg.conns; i++) {
        if (cfg.mode == MODE_HTTP && !(conns[i].hdr = malloc(HDR_MAX))) die("out of memory");
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));

    /* Connect everything, a bounded number at a time. */
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(cfg.connect_timeout * 1e9);
    int next = 0, in_flight = 0, connected = 0;
    struct epoll_event evs[MAX_EVENTS];
    while (connected < cfg.conns) {
        while (next < cfg.conns && in_flight < MAX_CONNECTS_IN_FLIGHT) {
            start_connect(&conns[next++], &addr);
            in_flight++;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) die("connect: %s", strerror(err));
            c->state = READY;
            set_events(c, EPOLLIN);
            in_flight--;
            connected++;
        }
        if (now_ns() > deadline) die("connected %d of %d before the timeout", connected, cfg.conns);
    }
    double connect_s = (double)(now_ns() - t0) / 1e9;

    /* Warm up: nothing is recorded while the window is unset. */
    uint64_t now = now_ns();
    window_start = window_end = UINT64_MAX;
    uint64_t warm_deadline = now + (uint64_t)(cfg.connect_timeout * 1e9);
    for (int i = 0; i < cfg.conns; i++) begin_request(&conns[i], now);
    pump(warm_deadline, 1, now + (uint64_t)(cfg.warmup * 1e9));
    if (answered != cfg.conns)
        die("only %d of %d connections had a reply within %.0f s", answered, cfg.conns,
            cfg.connect_timeout);
    double warm_s = (double)(now_ns() - now) / 1e9;
    double cpu_start = -1.0, cpu_end = -1.0;

    if (cfg.mode == MODE_HOLD) {
        printf("HELD %d\n", answered);
        fflush(stdout);
        /* Idle until the bench has measured and closes our stdin. */
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        char b[64];
        uint64_t hold_end = now_ns() + (uint64_t)(cfg.hold_seconds * 1e9);
        while (now_ns() < hold_end) {
            int r = poll(&pfd, 1, 100);
            if (r > 0 && read(0, b, sizeof b) <= 0) break;
        }
    } else {
        if (cfg.cpu_pid > 0) cpu_start = proc_cpu_s(cfg.cpu_pid);
        window_start = now_ns();
        window_end = window_start + (uint64_t)(cfg.duration * 1e9);
        pump(window_end, 0, 0);
        /* On a machine loaded far past its cores the server may get no CPU
         * for a whole short window: stretch the window, a window's length at
         * a time, until a reply completes in it (up to --connect-timeout), so
         * the rate is one measured over a longer window, not no rate at all.
         * The JSON's "seconds" is the window's real length.  The load
         * generator itself may be the one held up: woken after the window's
         * end with every reply waiting (up to MAX_EVENTS at once), it took
         * them all as late and left each connection idle (READY), so the
         * stretched window must send their next requests itself. */
        uint64_t give_up = window_start + (uint64_t)(cfg.connect_timeout * 1e9);
        while (!counted && window_end < give_up) {
            uint64_t now2 = now_ns();
            window_end = (now2 > window_end ? now2 : window_end) + (uint64_t)(cfg.duration * 1e9);
            for (int i = 0; i < cfg.conns; i++)
                if (conns[i].state == READY) begin_request(&conns[i], now2);
            pump(window_end, 0, 0);
        }
        if (cfg.cpu_pid > 0) cpu_end = proc_cpu_s(cfg.cpu_pid);
    }

    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < cfg.conns; i++) {
        setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(conns[i].fd);
    }
    if (cfg.mode == MODE_HOLD) return 0;

    qsort(samples, n_samples, sizeof *samples, cmp_u32);
    double secs = (double)(window_end - window_start) / 1e9;
    printf("{\"mode\": \"%s\", \"conns\": %d, \"size\": %zu, \"seconds\": %.6f, \"messages\": %llu, "
           "\"msgs_per_s\": %.1f, \"bytes_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"connect_s\": %.3f, \"warm_s\": %.3f, \"server_cpu_s\": %.6f}\n",
           cfg.mode == MODE_HTTP ? "http" : "echo", cfg.conns, cfg.mode == MODE_HTTP ? msg_len : cfg.size,
           secs, counted, counted / secs, counted * (double)cfg.size / secs, percentile_us(0.50),
           percentile_us(0.99), percentile_us(1.0), connect_s, warm_s,
           cpu_start >= 0 && cpu_end >= cpu_start ? cpu_end - cpu_start : -1.0);
    return 0;
}
