/*
 * WebSocket load generator on epoll: opens CONNECTIONS WebSockets (the
 * RFC 6455 handshake, at most IN_FLIGHT at a time), then
 *
 *   echo: each connection sends one masked SIZE-byte text frame and waits
 *         for the whole echo (checked byte for byte) before the next, for
 *         SECONDS or MAX_MESSAGES round trips, whichever comes first;
 *   idle: each connection makes one round trip, then all are held open
 *         until a line arrives on stdin (at most HOLD_SECONDS).
 *
 * Written in C for the reason bench/echo/client.c is: a Python client on one
 * core tops out below the servers under test. A round trip costs this
 * program one send, one recv and a share of an epoll_wait; the frame it sends
 * is built once, and the echo is parsed in place.
 *
 * Usage:
 *   ws_client echo HOST PORT PATH CONNECTIONS SIZE SECONDS MAX_MESSAGES
 *     prints: messages=N seconds=S errors=E connections=C
 *   ws_client idle HOST PORT PATH CONNECTIONS SIZE SECONDS
 *     prints: opened=N failed=F alive=A, then after the stdin line
 *     alive_after=A
 * SECONDS bounds the measurement (echo) or the opening (idle). A refused
 * handshake is printed to stderr with the server's status line; in echo
 * mode it is fatal (exit 1), since every connection must be open.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE (1 << 20)
#define MAX_EVENTS 256
#define HEAD_MAX 2048
/* Concurrent handshakes: well below the servers' listen backlogs (1024 to
 * 2048), so no SYN is dropped and retried a second later. */
#define IN_FLIGHT 256
#define HOLD_SECONDS 120

/* The key of RFC 6455's own example, and the accept value it derives: the
 * client need not hash anything to check the server's answer. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

enum state { CONNECTING, HANDSHAKE, OPEN, DONE, CLOSED };

struct conn {
    int fd;
    enum state state;
    int want_out;    /* registered for EPOLLOUT (connect, or a short send) */
    size_t sent;     /* bytes of the outgoing frame handed to the kernel */
    char *head;      /* the handshake answer so far (HANDSHAKE only) */
    size_t head_len;
    /* The incoming frame parser. */
    unsigned char hdr[14];
    size_t hdr_len, hdr_need;
    uint64_t left;   /* payload bytes of the current frame still to come */
    int opcode, fin;
    size_t got;      /* payload bytes of the current echo received */
    int wrong;       /* the echo differed from what was sent */
};

static const char *mode;
static char *frame;      /* the masked frame every connection sends */
static size_t frame_len;
static char *expected;   /* its payload, unmasked: what the echo must be */
static size_t size;
static char request[512];
static size_t request_len;
static char incoming[256 * 1024];

static unsigned long long messages;
static int errors, opened, failed, finished;

/* Complaints printed so far: a few say what went wrong; 10,000 would fill
 * the pipe that nobody reads until the result line, and hang us. */
static int complaints;
#define complain(...)                                                        \
    do {                                                                     \
        if (complaints++ < 3)                                                \
            fprintf(stderr, __VA_ARGS__);                                    \
    } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void raise_open_files(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static void build_frame(void) {
    /* FIN + text, the mask bit, a 7-, 16- or 64-bit length, the mask. */
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t header = 2 + (size < 126 ? 0 : size < 65536 ? 2 : 8) + 4;
    frame_len = header + size;
    frame = malloc(frame_len);
    expected = malloc(size);
    unsigned char *f = (unsigned char *)frame;
    f[0] = 0x81;
    if (size < 126) {
        f[1] = 0x80 | (unsigned char)size;
    } else if (size < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(size >> 8);
        f[3] = (unsigned char)size;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
    }
    memcpy(f + header - 4, mask, 4);
    memset(expected, 'x', size);
    for (size_t i = 0; i < size; i++)
        f[header + i] = (unsigned char)expected[i] ^ mask[i % 4];
}

static int watch(int ep, struct conn *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    c->want_out = out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct conn *c) {
    if (c->state == CLOSED)
        return;
    close(c->fd);
    free(c->head);
    c->head = NULL;
    c->state = CLOSED;
}

/* Send what is left of the frame; 0 when done or waiting, -1 on error. */
static int push(int ep, struct conn *c) {
    while (c->sent < frame_len) {
        ssize_t n = send(c->fd, frame + c->sent, frame_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return c->want_out ? 0 : watch(ep, c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
    return c->want_out ? watch(ep, c, 0) : 0;
}

/* A whole echo arrived: count it, then send the next or rest (idle). */
static int echoed(int ep, struct conn *c) {
    int good = c->got == size && !c->wrong;
    c->got = 0;
    c->wrong = 0;
    if (!good) {
        complain("wrong echo on a connection\n");
        return -1;
    }
    messages++;
    c->sent = 0;
    if (*mode == 'i') {
        c->state = DONE;
        finished++;
        return 0;
    }
    return push(ep, c);
}

/* Feed received bytes to the frame parser; -1 if the connection must go. */
static int parse(int ep, struct conn *c, const char *data, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        if (c->hdr_len < c->hdr_need) {
            size_t take = c->hdr_need - c->hdr_len;
            if (take > len - pos)
                take = len - pos;
            memcpy(c->hdr + c->hdr_len, data + pos, take);
            c->hdr_len += take;
            pos += take;
            if (c->hdr_len < c->hdr_need)
                return 0;
            if (c->hdr_need == 2) {
                if (c->hdr[1] & 0x80)
                    return -1; /* a server must not mask */
                int code = c->hdr[1] & 0x7f;
                c->hdr_need += code == 126 ? 2 : code == 127 ? 8 : 0;
                if (c->hdr_len < c->hdr_need)
                    continue;
            }
            /* The header is whole. */
            int code = c->hdr[1] & 0x7f;
            c->opcode = c->hdr[0] & 0x0f;
            c->fin = c->hdr[0] & 0x80;
            if (code < 126) {
                c->left = (uint64_t)code;
            } else if (code == 126) {
                c->left = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            } else {
                c->left = 0;
                for (int i = 0; i < 8; i++)
                    c->left = (c->left << 8) | c->hdr[2 + i];
            }
            if (c->opcode == 8)
                return -1; /* the server closed */
        }
        size_t take = c->left < len - pos ? (size_t)c->left : len - pos;
        if (c->opcode < 8) {
            /* Data (text, binary or a continuation): compare as it comes. */
            if (c->got + take > size ||
                memcmp(expected + c->got, data + pos, take) != 0)
                c->wrong = 1;
            c->got += take;
        }
        /* Pings and pongs are skipped: none is due within a measurement. */
        c->left -= take;
        pos += take;
        if (c->left == 0) {
            int message_end = c->opcode < 8 && c->fin;
            c->hdr_len = 0;
            c->hdr_need = 2;
            if (message_end && echoed(ep, c) < 0)
                return -1;
        }
    }
    return 0;
}

static int start(int ep, struct conn *c, const struct sockaddr_in *addr) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return -1;
    /* Small frames must leave at once, as a real client's would. */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->hdr_need = 2;
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        c->state = CLOSED;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Move a connection through connect -> request -> 101; -1 on failure. */
static int handshake(int ep, struct conn *c, unsigned events) {
    if (c->state == CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error || !(events & EPOLLOUT))
            return -1;
        /* A fresh socket's buffer takes a 200-byte request whole. */
        if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len)
            return -1;
        c->head = malloc(HEAD_MAX + 1);
        c->head_len = 0;
        c->state = HANDSHAKE;
        return c->head ? watch(ep, c, 0) : -1;
    }
    ssize_t n = recv(c->fd, c->head + c->head_len, HEAD_MAX - c->head_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        complain("handshake: connection closed before an answer\n");
        return -1;
    }
    c->head_len += (size_t)n;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (end == NULL)
        return c->head_len < HEAD_MAX ? 0 : -1;
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0 || !strstr(c->head, ACCEPT)) {
        char *line_end = strstr(c->head, "\r\n");
        complain("handshake refused: %.*s\n", (int)(line_end - c->head), c->head);
        return -1;
    }
    /* Whatever followed the head is the first bytes of a frame. */
    size_t rest = c->head_len - (size_t)(end + 4 - c->head);
    char leftover[HEAD_MAX];
    memcpy(leftover, end + 4, rest);
    free(c->head);
    c->head = NULL;
    c->state = OPEN;
    opened++;
    return rest ? parse(ep, c, leftover, rest) : 0;
}

static void on_event(int ep, struct conn *c, unsigned events) {
    int fail = 0;
    if (c->state == CLOSED)
        return;
    if (c->state == CONNECTING || c->state == HANDSHAKE) {
        fail = handshake(ep, c, events) < 0;
    } else {
        if (events & EPOLLOUT)
            fail = push(ep, c) < 0;
        if (!fail && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
            ssize_t n = recv(c->fd, incoming, sizeof incoming, 0);
            if (n > 0)
                fail = parse(ep, c, incoming, (size_t)n) < 0;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                fail = 1;
        }
    }
    if (fail) {
        if (c->state == OPEN || c->state == DONE)
            errors++;
        else
            failed++;
        if (c->state == DONE)
            finished--;
        drop(c);
    }
}

static int count_alive(struct conn *conns, int count) {
    int alive = 0;
    char byte;
    for (int i = 0; i < count; i++) {
        if (conns[i].state != DONE && conns[i].state != OPEN)
            continue;
        ssize_t n = recv(conns[i].fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            alive++;
    }
    return alive;
}

int main(int argc, char **argv) {
    mode = argc > 1 ? argv[1] : "";
    int echo = strcmp(mode, "echo") == 0, idle = strcmp(mode, "idle") == 0;
    if (!(echo && argc == 9) && !(idle && argc == 8)) {
        fprintf(stderr,
                "usage: %s echo HOST PORT PATH CONNECTIONS SIZE SECONDS MAX_MESSAGES\n"
                "       %s idle HOST PORT PATH CONNECTIONS SIZE SECONDS\n",
                argv[0], argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[3]))};
    const char *path = argv[4];
    int count = atoi(argv[5]);
    size = (size_t)atol(argv[6]);
    double seconds = atof(argv[7]);
    unsigned long long max_messages = echo ? strtoull(argv[8], NULL, 10) : 0;
    if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1 || count < 1 ||
        size < 1 || size > MAX_SIZE || seconds <= 0 || (echo && max_messages < 1) ||
        strlen(path) > 200 || path[0] != '/') {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    raise_open_files();
    build_frame();
    request_len = (size_t)snprintf(
        request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        path, argv[2], argv[3]);

    struct conn *conns = calloc((size_t)count, sizeof *conns);
    int ep = epoll_create1(0);
    if (!frame || !expected || !conns || ep < 0) {
        perror("setup");
        return 1;
    }

    /* Open every connection, IN_FLIGHT handshakes at a time. The clock of
     * the echo figure starts after: it counts round trips, not handshakes. */
    struct epoll_event events[MAX_EVENTS];
    double open_deadline = now() + (echo ? 60 : seconds);
    int started = 0;
    while (opened + failed < count && now() < open_deadline) {
        while (started < count && started - opened - failed < IN_FLIGHT) {
            if (start(ep, &conns[started], &addr) < 0)
                failed++;
            started++;
        }
        int ready = epoll_wait(ep, events, MAX_EVENTS, 100);
        for (int e = 0; e < ready; e++)
            on_event(ep, events[e].data.ptr, events[e].events);
        if (echo && failed > 0)
            break;
    }
    if (echo && opened < count) {
        fprintf(stderr, "only %d of %d WebSockets opened\n", opened, count);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        if (conns[i].state == CONNECTING || conns[i].state == HANDSHAKE) {
            failed++;
            drop(&conns[i]);
        }
    }
    failed += count - started;

    /* Round trips: timed ones (echo), or one per connection (idle). */
    double start_time = now(), deadline = start_time + seconds;
    if (idle)
        deadline = open_deadline + 15;
    for (int i = 0; i < count; i++) {
        if (conns[i].state == OPEN && push(ep, &conns[i]) < 0) {
            errors++;
            drop(&conns[i]);
        }
    }
    double finished_at = start_time;
    while (messages < (echo ? max_messages : (unsigned long long)opened)) {
        finished_at = now();
        if (finished_at >= deadline || opened - errors <= (idle ? finished : 0))
            break;
        int ready = epoll_wait(ep, events, MAX_EVENTS, 100);
        if (ready < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int e = 0; e < ready; e++)
            on_event(ep, events[e].data.ptr, events[e].events);
    }
    finished_at = now();

    if (echo) {
        printf("messages=%llu seconds=%.6f errors=%d connections=%d\n", messages,
               finished_at - start_time, errors, count);
        return 0;
    }

    /* Idle: report, hold until told (or HOLD_SECONDS), report again. */
    int done = finished;
    printf("opened=%d failed=%d alive=%d\n", done, count - done,
           count_alive(conns, count));
    fflush(stdout);
    struct pollfd in = {.fd = 0, .events = POLLIN};
    poll(&in, 1, HOLD_SECONDS * 1000);
    printf("alive_after=%d\n", count_alive(conns, count));
    fflush(stdout);
    return 0;
}
